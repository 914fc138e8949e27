"""Gated CNN decoding (a window of the receptive field) against the full forward pass over
the whole unpadded sequence, past the window's length, greedy, sampled and beam search."""

import functools

import jax.numpy as jnp
import numpy as np

from lm_jax.config.defaults import base_config
from lm_jax.generate.beam_search import beam_search
from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig
from lm_jax.models.registry import get_family
from tests.decoding_reference import best_two_token_continuation, perturbed_model

VOCAB = 37
# 2 layers of 3 taps: the window is 5 tokens; ragged prompts longer and shorter than it.
PROMPTS = [[5, 9, 2, 7, 30, 11, 4], [3], [8, 8, 1]]
NEW = 9
REF_LEN = 24


@functools.lru_cache(maxsize=None)
def _model():
  m = base_config().model
  m.family = 'cnn'
  m.update(num_layers=2, d_model=16, tie_embeddings=False)
  m.cnn.update(kernel_size=3, channels=24)
  return perturbed_model(m, VOCAB)


def _generator(sample_cfg: SampleConfig) -> Generator:
  _, cfg, params = _model()
  return Generator(get_family('cnn').decoding, cfg, params, sample_cfg, bucket=8)


def _full_pass_logits(prompt, new_tokens):
  """[steps, V]: the whole unpadded row (right-padded: later positions never change earlier
  logits) through the model, at every generated step."""
  forward, _, params = _model()
  seq = list(prompt) + list(new_tokens)
  padded = np.zeros((1, REF_LEN), np.int32)
  padded[0, :len(seq)] = seq
  return np.asarray(forward(params, padded)[0][len(prompt) - 1:len(seq) - 1])


def test_window_decoding_equals_full_passes_greedy():
  rows, logits_TxBxV = _generator(SampleConfig(temperature=0.0)).generate(
      PROMPTS, NEW, keep_logits=True)
  for b, (prompt, row) in enumerate(zip(PROMPTS, rows)):
    assert len(row.tokens) == NEW and row.finish == 'length'
    ref_TxV = _full_pass_logits(prompt, row.tokens)
    np.testing.assert_allclose(logits_TxBxV[:, b], ref_TxV, atol=2e-5, rtol=1e-5)
    assert row.tokens == np.argmax(ref_TxV[:, :VOCAB], axis=-1).tolist()
  assert len({tuple(r.tokens) for r in rows}) > 1  # the rows really differ


def test_sampled_rows_equal_full_passes_and_their_rows_alone():
  gen = _generator(SampleConfig(temperature=1.0, top_k=10))
  rows, logits_TxBxV = gen.generate(PROMPTS, 6, seed=4, keep_logits=True)
  for b, (prompt, row) in enumerate(zip(PROMPTS, rows)):
    np.testing.assert_allclose(logits_TxBxV[:, b], _full_pass_logits(prompt, row.tokens),
                               atol=2e-5, rtol=1e-5)
    assert gen.generate([prompt], 6, seed=4, row_ids=[b])[0].tokens == row.tokens


def test_beam_search_finds_the_best_two_token_continuation():
  forward, _, params = _model()
  prompt = PROMPTS[0]
  (tokens, score), = beam_search(_generator(SampleConfig(temperature=0.0)), [prompt], 2,
                                 num_beams=VOCAB, length_penalty=0.0)
  best, best_score = best_two_token_continuation(forward, params, prompt, VOCAB, REF_LEN)
  assert tuple(tokens) == best
  assert abs(score - best_score) < 1e-4


def test_the_window_is_the_receptive_field_and_does_not_grow():
  _, cfg, params = _model()
  decoding = get_family('cnn').decoding
  prompts = jnp.asarray([[0, 0, 4, 5], [1, 2, 3, 4]], jnp.int32)
  _, state = decoding.prefill(cfg, params, prompts, jnp.asarray([2, 4]), 64)
  assert state['window_BxR'].shape == (2, 5)  # 2 layers * (3 - 1) + 1
  np.testing.assert_array_equal(state['real_BxR'], [[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]])
  _, state = decoding.step(cfg, params, state, jnp.asarray([6, 7], jnp.int32))
  np.testing.assert_array_equal(state['window_BxR'], [[0, 0, 4, 5, 6], [1, 2, 3, 4, 7]])
  assert decoding.cache_bytes_per_token(cfg) == 0 and decoding.max_len(cfg) is None
