"""Samplers against NumPy and against Hugging Face's logits processors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.errors import ConfigError
from lm_jax.generate.sampling import SampleConfig, filtered_sorted, penalize_repetition, sample

V = 50


def _logits(seed=0, batch=4):
  return np.random.default_rng(seed).normal(0, 2.0, (batch, V)).astype(np.float32)


def _draws(logits_BxV, cfg, n=400):
  """[n, B] tokens sampled with n different keys."""
  keys = jax.random.split(jax.random.PRNGKey(0), n * logits_BxV.shape[0])
  keys = keys.reshape(n, logits_BxV.shape[0], -1)
  seen = jnp.zeros(logits_BxV.shape, bool)
  draw = jax.jit(jax.vmap(lambda k: sample(k, jnp.asarray(logits_BxV), seen, cfg)))
  return np.asarray(draw(keys))


def _kept(logits_BxV, cfg):
  """[B, V] bool: the tokens filtered_sorted leaves a chance."""
  sorted_BxV, order_BxV = filtered_sorted(jnp.asarray(logits_BxV), cfg)
  kept = np.zeros(logits_BxV.shape, bool)
  np.put_along_axis(kept, np.asarray(order_BxV), np.isfinite(np.asarray(sorted_BxV)), axis=-1)
  return kept


def test_top_k_never_samples_outside_the_k_best():
  logits = _logits(1)
  draws = _draws(logits, SampleConfig(temperature=1.5, top_k=5))
  best5 = np.argsort(-logits, axis=-1)[:, :5]
  for b in range(logits.shape[0]):
    assert set(draws[:, b]) <= set(best5[b])


def test_top_p_samples_only_from_the_smallest_set_with_that_mass():
  logits, p = _logits(2), 0.7
  draws = _draws(logits, SampleConfig(temperature=1.0, top_p=p))
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  for b in range(logits.shape[0]):
    order = np.argsort(-probs[b])
    size = int(np.searchsorted(np.cumsum(probs[b][order]), p) + 1)  # first prefix >= p
    nucleus = set(order[:size])
    assert set(draws[:, b]) <= nucleus


def test_filters_keep_what_hugging_face_keeps():
  torch = pytest.importorskip('torch')
  from transformers.generation import logits_process as lp
  logits = _logits(3)
  cases = [(SampleConfig(top_k=7), [lp.TopKLogitsWarper(7)]),
           (SampleConfig(top_p=0.8), [lp.TopPLogitsWarper(0.8)]),
           (SampleConfig(min_p=0.1), [lp.MinPLogitsWarper(0.1)]),
           (SampleConfig(top_k=10, top_p=0.6, min_p=0.05),
            [lp.TopKLogitsWarper(10), lp.TopPLogitsWarper(0.6), lp.MinPLogitsWarper(0.05)])]
  for cfg, warpers in cases:
    scores = torch.tensor(logits)
    for w in warpers:
      scores = w(None, scores)
    np.testing.assert_array_equal(_kept(logits, cfg), np.isfinite(scores.numpy()), str(cfg))


def test_repetition_penalty_matches_hugging_face():
  torch = pytest.importorskip('torch')
  from transformers.generation import logits_process as lp
  logits = _logits(4, batch=2)
  ids = np.array([[3, 7, 7, 20], [0, 1, 2, 49]])
  seen = np.zeros(logits.shape, bool)
  np.put_along_axis(seen, ids, True, axis=-1)
  ref = lp.RepetitionPenaltyLogitsProcessor(1.3)(torch.tensor(ids), torch.tensor(logits))
  np.testing.assert_allclose(penalize_repetition(jnp.asarray(logits), seen, 1.3), ref.numpy(),
                             rtol=1e-6)


def test_greedy_is_the_argmax_and_sampling_follows_the_distribution():
  logits = _logits(5, batch=1)
  assert _draws(logits, SampleConfig(temperature=0.0), n=3)[:, 0].tolist() == [
      int(np.argmax(logits))] * 3
  draws = _draws(logits, SampleConfig(temperature=1.0), n=4000)[:, 0]
  probs = np.exp(logits[0] - logits[0].max())
  probs /= probs.sum()
  freq = np.bincount(draws, minlength=V) / draws.size
  assert np.abs(freq - probs).max() < 0.03


@pytest.mark.parametrize('key,value', [('temperature', -1.0), ('top_p', 0.0), ('top_k', -2),
                                       ('min_p', 1.0), ('repetition_penalty', 0.0)])
def test_bad_sample_settings_name_the_key(key, value):
  with pytest.raises(ConfigError, match=f'config.sample.{key}'):
    SampleConfig(**{key: value})
