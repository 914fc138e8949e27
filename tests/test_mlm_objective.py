"""The mlm objective against NumPy (float64): CE on masked positions, NSP, their sum's mean."""

import jax
import numpy as np

from lm_jax.objectives import make_objective, mean_metrics
from lm_jax.config.defaults import base_config
from lm_jax.models.registry import get_family

B, L, V = 4, 6, 13


def _case(seed=0):
  rng = np.random.default_rng(seed)
  logits = (3 * rng.standard_normal((B, L, V))).astype(np.float32)
  nsp_logits = (2 * rng.standard_normal((B, 2))).astype(np.float32)
  weights = np.zeros((B, L), np.float32)
  for b in range(B):  # two masked positions per row, as the mlm task gives every row one count
    weights[b, rng.choice(L, 2, replace=False)] = 1.0
  batch = {'targets': rng.integers(0, V, (B, L)).astype(np.int32), 'weights': weights,
           'nsp_labels': np.array([0, 1, 1, 0], np.int32)}
  return {'logits': logits, 'nsp_logits': nsp_logits}, batch


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  return x - (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))


def _objective():
  c = base_config()
  c.objective.name = 'mlm'
  c.model.family = 'encoder'
  _, model_cfg = get_family('encoder').build(c.model, V)
  return make_objective(c, model_cfg)


def test_mlm_plus_nsp_means_match_numpy():
  outputs, batch = _case()
  objective, sums, weight = jax.jit(_objective().evaluate)(outputs, batch)
  w = batch['weights']
  logp = _log_softmax(outputs['logits'])
  nll = -np.take_along_axis(logp, batch['targets'][..., None], -1)[..., 0]
  mlm_mean = (nll * w).sum() / w.sum()
  nsp_nll = -np.take_along_axis(_log_softmax(outputs['nsp_logits']),
                                batch['nsp_labels'][:, None], -1)[:, 0]
  assert weight == w.sum() == 8
  # BERT's pre-training loss: mean MLM CE over masked tokens + mean NSP CE over rows.
  np.testing.assert_allclose(objective / weight, mlm_mean + nsp_nll.mean(), rtol=1e-5)
  means = mean_metrics(jax.tree.map(float, sums), float(weight), max)
  np.testing.assert_allclose(means['loss'], mlm_mean, rtol=1e-5)
  np.testing.assert_allclose(means['nsp_loss'], nsp_nll.mean(), rtol=1e-5)
  pred = outputs['logits'].argmax(-1) == batch['targets']
  np.testing.assert_allclose(means['accuracy'], (pred * w).sum() / w.sum(), rtol=1e-6)
  want_nsp_acc = np.mean(outputs['nsp_logits'].argmax(-1) == batch['nsp_labels'])
  np.testing.assert_allclose(means['nsp_accuracy'], want_nsp_acc, rtol=1e-6)


def test_unmasked_positions_and_missing_nsp_do_not_count():
  outputs, batch = _case()
  objective = _objective()
  changed = dict(outputs, logits=np.where(batch['weights'][..., None] > 0,
                                          outputs['logits'], 50.0).astype(np.float32))
  no_nsp = {k: v for k, v in batch.items() if k != 'nsp_labels'}
  a, sums, _ = objective(outputs, no_nsp)
  b, _, _ = objective(changed, no_nsp)
  np.testing.assert_allclose(a, b, rtol=1e-6)
  assert 'nsp_loss' not in sums
