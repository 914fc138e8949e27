"""Recurrent decoding (state carried between steps) against recomputing the whole sequence."""

import functools
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.generate.beam_search import beam_search
from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig
from lm_jax.models.registry import get_family
from tests.decoding_reference import best_two_token_continuation, perturbed_model

VOCAB = 37
PROMPTS = [[5, 9, 2, 44 % VOCAB, 7, 30], [3], [8, 8, 1]]  # ragged: left padding differs per row
REF_LEN = 16


@functools.lru_cache(maxsize=None)
def _model(cell: str):
  m = base_config().model
  m.family = 'rnn'
  m.update(num_layers=2, d_model=16, tie_embeddings=cell != 'gru')  # gru: an untied head
  m.rnn.update(cell=cell, hidden_size=24)  # tied lstm/rnn: the out_proj too
  return perturbed_model(m, VOCAB)


@functools.lru_cache(maxsize=None)
def _generator(cell: str, sample_cfg: SampleConfig) -> Generator:
  _, cfg, params = _model(cell)
  return Generator(get_family('rnn').decoding, cfg, params, sample_cfg, bucket=8)


def _recomputed_logits(forward, params, prompt, new_tokens):
  """[steps, V]: the unpadded row run from a zero state over prompt + tokens so far, at every
  step (right-padded to one length: later positions never change earlier logits)."""
  seq = list(prompt) + list(new_tokens)
  padded = np.zeros((1, REF_LEN), np.int32)
  padded[0, :len(seq)] = seq
  logits = forward(params, padded)[0]
  return np.asarray(logits[len(prompt) - 1:len(seq) - 1])


@pytest.mark.parametrize('cell', ['lstm', 'gru', 'rnn'])
def test_carried_state_equals_recomputing_the_sequence_greedy(cell):
  forward, _, params = _model(cell)
  rows, logits_TxBxV = _generator(cell, SampleConfig(temperature=0.0)).generate(
      PROMPTS, 6, keep_logits=True)
  for b, (prompt, row) in enumerate(zip(PROMPTS, rows)):
    assert len(row.tokens) == 6 and row.finish == 'length'
    ref_TxV = _recomputed_logits(forward, params, prompt, row.tokens)
    np.testing.assert_allclose(logits_TxBxV[:, b], ref_TxV, atol=2e-5, rtol=1e-5)
    assert row.tokens == np.argmax(ref_TxV[:, :VOCAB], axis=-1).tolist()
  assert len({tuple(r.tokens) for r in rows}) > 1  # the rows really differ


def test_sampled_rows_equal_recomputing_and_their_rows_alone():
  forward, _, params = _model('lstm')
  gen = _generator('lstm', SampleConfig(temperature=1.0, top_k=10))
  rows, logits_TxBxV = gen.generate(PROMPTS, 5, seed=4, keep_logits=True)
  for b, (prompt, row) in enumerate(zip(PROMPTS, rows)):
    ref_TxV = _recomputed_logits(forward, params, prompt, row.tokens)
    np.testing.assert_allclose(logits_TxBxV[:, b], ref_TxV, atol=2e-5, rtol=1e-5)
    assert gen.generate([prompt], 5, seed=4, row_ids=[b])[0].tokens == row.tokens


def test_beam_search_over_the_carried_state_finds_the_best_two_token_continuation():
  forward, _, params = _model('gru')
  gen = _generator('gru', SampleConfig(temperature=0.0))
  prompt = PROMPTS[2]
  (tokens, score), = beam_search(gen, [prompt], 2, num_beams=VOCAB, length_penalty=0.0)
  best, best_score = best_two_token_continuation(forward, params, prompt, VOCAB, REF_LEN)
  assert tuple(tokens) == best
  assert abs(score - best_score) < 1e-4


def test_the_state_does_not_grow_with_the_sequence():
  _, cfg, params = _model('lstm')
  decoding = get_family('rnn').decoding
  prompts = jnp.asarray([[0, 0, 4, 5], [1, 2, 3, 4]], jnp.int32)
  _, state = decoding.prefill(cfg, params, prompts, jnp.asarray([2, 4]), 64)
  shapes = {tuple(x.shape) for x in jax.tree.leaves(state)}
  assert shapes == {(2, 24)}  # h and c of each layer, [B, hidden]
  assert decoding.cache_bytes_per_token(cfg) == 0 and decoding.max_len(cfg) is None
