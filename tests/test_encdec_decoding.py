"""T5 decoding (encoder once, cached self and cross keys/values) against recomputing the decoder."""

import functools
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.generate.beam_search import beam_search
from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig
from lm_jax.models.registry import get_family

VOCAB = 50
PROMPTS = [[5, 9, 2, 44, 7, 30, 1], [3], [8, 8, 1]]  # ragged: left padding differs per row
ENC_LEN, DEC_LEN = 8, 12


@functools.lru_cache(maxsize=None)
def _model(feed_forward: str):
  m = base_config().model
  m.update(family='encdec', num_layers=2, d_model=32, num_heads=4, max_len=64,
           tie_embeddings=feed_forward == 'relu', init_std=0.3)
  # few buckets: decoder offsets past 4 land in the log-spaced ones
  m.encdec.update(feed_forward=feed_forward, num_decoder_layers=3,
                  relative_attention_num_buckets=8, relative_attention_max_distance=16)
  module, cfg = get_family('encdec').build(m, VOCAB)
  params = nn.meta.unbox(module.init(
      jax.random.PRNGKey(1), jnp.zeros((1, ENC_LEN), jnp.int32),
      jnp.zeros((1, DEC_LEN), jnp.int32))['params'])
  forward = jax.jit(lambda p, enc, valid, dec: module.apply({'params': p}, enc, dec, valid))
  return forward, cfg, params


@functools.lru_cache(maxsize=None)
def _generator(feed_forward: str, sample_cfg: SampleConfig) -> Generator:
  _, cfg, params = _model(feed_forward)
  return Generator(get_family('encdec').decoding, cfg, params, sample_cfg, bucket=8)


def _recomputed_logits(forward, params, prompt, new_tokens, start=0):
  """[steps, V]: the whole model on the right-padded, unpadded-length prompt (valid mask)
  and the decoder over <start> + the tokens so far, at every step."""
  enc = np.zeros((1, ENC_LEN), np.int32)
  enc[0, :len(prompt)] = prompt
  valid = (np.arange(ENC_LEN) < len(prompt)).astype(np.int32)[None]
  dec = np.zeros((1, DEC_LEN), np.int32)
  dec[0, 0] = start
  dec[0, 1:len(new_tokens)] = new_tokens[:-1]
  return np.asarray(forward(params, enc, valid, dec)[0, :len(new_tokens)])


@pytest.mark.parametrize('feed_forward,temperature',
                         [('relu', 0.0), ('relu', 1.0), ('gated-gelu', 0.0)])
def test_cached_decoding_equals_recomputing_the_decoder(feed_forward, temperature):
  forward, _, params = _model(feed_forward)
  rows, logits_TxBxV = _generator(feed_forward, SampleConfig(temperature=temperature)).generate(
      PROMPTS, 7, seed=3, keep_logits=True)
  for b, (prompt, row) in enumerate(zip(PROMPTS, rows)):
    assert len(row.tokens) == 7 and row.finish == 'length'
    ref_TxV = _recomputed_logits(forward, params, prompt, row.tokens)
    np.testing.assert_allclose(logits_TxBxV[:, b], ref_TxV, atol=2e-5, rtol=1e-5)
    if temperature == 0.0:
      assert row.tokens == np.argmax(ref_TxV[:, :VOCAB], axis=-1).tolist()


def test_beam_search_finds_the_best_two_token_continuation():
  forward, _, params = _model('relu')
  gen = _generator('relu', SampleConfig(temperature=0.0))
  prompt = PROMPTS[2]
  (tokens, score), = beam_search(gen, [prompt], 2, num_beams=VOCAB, length_penalty=0.0)
  enc = np.zeros((VOCAB, ENC_LEN), np.int32)
  enc[:, :len(prompt)] = prompt
  valid = np.broadcast_to((np.arange(ENC_LEN) < len(prompt)).astype(np.int32), enc.shape)
  dec = np.zeros((VOCAB, DEC_LEN), np.int32)
  dec[:, 1] = np.arange(VOCAB)  # <start>, a
  logits = np.asarray(forward(params, enc, valid, dec), np.float64)[:, :2, :VOCAB]
  top = logits.max(-1, keepdims=True)
  logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
  total = {(a, b): logp[a, 0, a] + logp[a, 1, b]
           for a, b in itertools.product(range(VOCAB), repeat=2)}
  best = max(total, key=total.get)
  assert tuple(tokens) == best
  assert abs(score - total[best]) < 1e-4


def test_the_decoder_starts_from_the_runs_pad_token():
  forward, cfg, params = _model('relu')
  decoding = get_family('encdec').decoding
  cfg = decoding.for_tokenizer(cfg, {'eos': 1, 'pad': 7})
  assert decoding.for_tokenizer(cfg, {'eos': 1}) == cfg  # no pad role: unchanged
  gen = Generator(decoding, cfg, params, SampleConfig(temperature=0.0), bucket=8)
  rows, logits_TxBxV = gen.generate(PROMPTS[:2], 4, keep_logits=True)
  for b, (prompt, row) in enumerate(zip(PROMPTS, rows)):
    ref_TxV = _recomputed_logits(forward, params, prompt, row.tokens, start=7)
    np.testing.assert_allclose(logits_TxBxV[:, b], ref_TxV, atol=2e-5, rtol=1e-5)
  other = _recomputed_logits(forward, params, PROMPTS[0], rows[0].tokens, start=0)
  assert not np.allclose(logits_TxBxV[:, 0], other, atol=1e-3)  # the start token matters
