"""KV-cache decoding against recomputing the whole sequence, batching, seeds, sharding."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig
from lm_jax.models.decoder.decoding import DECODING
from lm_jax.models.decoder.family import build

VOCAB = 61
PROMPTS = [[5, 9, 2, 44, 7], [3], [8, 8, 1]]  # ragged: left padding differs per row


@functools.lru_cache(maxsize=None)
def _model(style: str):
  m = base_config().model
  m.update(num_layers=2, d_model=32, num_heads=4, max_len=40)
  if style == 'llama':  # rope, GQA, scanned layers
    m.update(position='rope', num_kv_heads=2, norm='rmsnorm', mlp='swiglu',
             tie_embeddings=False, scan_layers=True)
  module, cfg = build(m, VOCAB)
  params = nn.meta.unbox(module.init(jax.random.PRNGKey(1),
                                     jnp.zeros((1, 8), jnp.int32))['params'])
  forward = jax.jit(lambda p, x: module.apply({'params': p}, x))
  return forward, cfg, params


@functools.lru_cache(maxsize=None)
def _generator(style: str, sample_cfg: SampleConfig) -> Generator:
  _, cfg, params = _model(style)
  return Generator(DECODING, cfg, params, sample_cfg, bucket=8)


def _recomputed_logits(forward, params, prompt, new_tokens):
  """[steps, V]: the full causal forward pass over prompt + tokens so far, at every step
  (one right-padded length: later positions never change earlier logits)."""
  seq = list(prompt) + list(new_tokens)
  padded = np.zeros((1, 24), np.int32)
  padded[0, :len(seq)] = seq
  logits = forward(params, padded)[0]
  return np.asarray(logits[len(prompt) - 1:len(seq) - 1])


@pytest.mark.parametrize('style', ['gpt', 'llama'])
@pytest.mark.parametrize('temperature', [0.0, 1.0])
def test_cached_decoding_equals_recomputing_the_sequence(style, temperature):
  forward, _, params = _model(style)
  gen = _generator(style, SampleConfig(temperature=temperature))
  rows, logits_TxBxV = gen.generate(PROMPTS, 6, seed=3, keep_logits=True)
  for b, (prompt, row) in enumerate(zip(PROMPTS, rows)):
    assert len(row.tokens) == 6 and row.finish == 'length'
    ref_TxV = _recomputed_logits(forward, params, prompt, row.tokens)
    np.testing.assert_allclose(logits_TxBxV[:, b], ref_TxV, atol=2e-5, rtol=1e-5)
    if temperature == 0.0:
      assert row.tokens == np.argmax(ref_TxV[:, :VOCAB], axis=-1).tolist()


@pytest.mark.parametrize('sample_cfg', [SampleConfig(temperature=0.0),
                                        SampleConfig(temperature=0.9, top_k=20, top_p=0.9)])
def test_a_batch_equals_its_rows_decoded_one_by_one(sample_cfg):
  gen = _generator('gpt', sample_cfg)
  batch = gen.generate(PROMPTS, 5, seed=7)
  for b, prompt in enumerate(PROMPTS):
    alone = gen.generate([prompt], 5, seed=7, row_ids=[b])
    assert alone[0].tokens == batch[b].tokens


def test_same_seed_same_tokens_other_seed_other_tokens():
  gen = _generator('gpt', SampleConfig(temperature=1.0))
  first = [r.tokens for r in gen.generate(PROMPTS, 8, seed=11)]
  assert first == [r.tokens for r in gen.generate(PROMPTS, 8, seed=11)]
  assert first != [r.tokens for r in gen.generate(PROMPTS, 8, seed=12)]


def test_temperature_towards_zero_equals_greedy():
  greedy = _generator('llama', SampleConfig(temperature=0.0))
  cold = _generator('llama', SampleConfig(temperature=1e-6))
  assert ([r.tokens for r in cold.generate(PROMPTS, 6, seed=5)]
          == [r.tokens for r in greedy.generate(PROMPTS, 6)])


def test_stop_token_and_stop_string_end_rows_and_the_loop():
  gen = _generator('gpt', SampleConfig(temperature=0.0))
  free = gen.generate(PROMPTS[:1], 8)[0].tokens
  stop = free[3]
  cut = free.index(stop)  # the first time the stop token comes
  row = gen.generate(PROMPTS[:1], 8, stop_tokens=[stop])[0]
  assert row.tokens == free[:cut] and row.finish == 'stop_token'

  def decode(ids):
    return ''.join(chr(65 + i) for i in ids)

  text = decode(free)
  stop_string = text[2:4]
  steps = []
  row = gen.generate(PROMPTS[:1], 8, stop_strings=[stop_string], decode=decode,
                     on_step=lambda rows: steps.append(len(rows[0].tokens)))[0]
  assert row.text == text[:text.find(stop_string)] and row.finish == 'stop_string'
  assert len(steps) == text.find(stop_string) + len(stop_string)  # no step after the stop


# ~20 s quiet (65 s on a loaded 2-core CPU): a mesh of 8 and two compiles
def test_sharded_decoding_equals_single_device():
  from tests.sharded_setup import built_for, tiny_model_cfg
  m = tiny_model_cfg('llama')
  m.update(max_len=32)
  built = built_for(m, {'data': 2, 'tensor': 4})
  state = built.init_state(0)
  single = Generator(DECODING, built.model_cfg, jax.device_get(state.params),
                     SampleConfig(temperature=1.0, top_k=10), bucket=8)
  prompts = PROMPTS + [[1, 2], [60, 3, 3, 3], [7], [9, 9], [4, 5, 6]]
  ref, ref_logits = single.generate(prompts, 5, seed=2, keep_logits=True)
  with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    sharded = Generator(DECODING, built.model_cfg, state.params,
                        SampleConfig(temperature=1.0, top_k=10), bucket=8,
                        batch_sharding=built.batch_sharding)
    rows, logits = sharded.generate(prompts, 5, seed=2, keep_logits=True)
  assert [r.tokens for r in rows] == [r.tokens for r in ref]
  np.testing.assert_allclose(logits, ref_logits, atol=2e-5)
