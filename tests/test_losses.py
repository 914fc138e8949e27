"""Token losses against NumPy (float64) references written from the formulas."""

import jax
import numpy as np
import pytest

from lm_jax.train.losses import cross_entropy_sums, kl_divergence_sums

B, L, V = 3, 5, 11


def _np_log_softmax(x):
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  log_z = m + np.log(np.exp(x - m).sum(-1, keepdims=True))
  return x - log_z, log_z[..., 0]


def _case(seed=0, scale=3.0):
  rng = np.random.default_rng(seed)
  logits = (scale * rng.standard_normal((B, L, V))).astype(np.float32)
  logits[0, 0] += 20.0  # one large-magnitude row: logsumexp must stay stable
  targets = rng.integers(0, V, size=(B, L)).astype(np.int32)
  weights = np.ones((B, L), np.float32)
  weights[0, 3:] = 0.0   # padding at the end of a row
  weights[2, :] = 0.0    # a fully padded row
  weights[1, 1] = 0.5    # a fractional weight
  return logits, {'targets': targets, 'weights': weights}


@pytest.mark.parametrize('z_loss', [0.0, 1e-2])
def test_cross_entropy_sums_match_numpy(z_loss):
  logits, batch = _case()
  objective, aux = jax.jit(cross_entropy_sums, static_argnums=2)(
      logits, batch, z_loss)
  logp, log_z = _np_log_softmax(logits)
  w = batch['weights'].astype(np.float64)
  nll = -np.take_along_axis(logp, batch['targets'][..., None], -1)[..., 0]
  want_loss = np.sum(nll * w)
  want_z = np.sum(log_z ** 2 * w)
  np.testing.assert_allclose(aux['loss_sum'], want_loss, rtol=1e-5)
  np.testing.assert_allclose(aux['z_loss_sum'], want_z, rtol=1e-5)
  np.testing.assert_allclose(aux['weight_sum'], w.sum(), rtol=0)
  np.testing.assert_allclose(objective, want_loss + z_loss * want_z, rtol=1e-5)


def test_masked_positions_do_not_count():
  """Changing logits / targets where weight == 0 changes nothing."""
  logits, batch = _case()
  _, aux = cross_entropy_sums(logits, batch)
  logits2 = logits.copy()
  logits2[2] = 100.0 * np.random.default_rng(1).standard_normal((L, V))
  targets2 = batch['targets'].copy()
  targets2[0, 3:] = (targets2[0, 3:] + 1) % V
  _, aux2 = cross_entropy_sums(logits2, dict(batch, targets=targets2))
  np.testing.assert_allclose(aux2['loss_sum'], aux['loss_sum'], rtol=1e-6)
  np.testing.assert_allclose(aux2['z_loss_sum'], aux['z_loss_sum'], rtol=1e-6)


def test_uniform_logits_give_log_vocab():
  logits = np.zeros((B, L, V), np.float32)
  targets = np.zeros((B, L), np.int32)
  weights = np.ones((B, L), np.float32)
  _, aux = cross_entropy_sums(logits, {'targets': targets, 'weights': weights})
  np.testing.assert_allclose(aux['loss_sum'] / aux['weight_sum'], np.log(V),
                             rtol=1e-6)


@pytest.mark.parametrize('z_loss', [0.0, 1e-2])
def test_cross_entropy_grad_is_softmax_minus_onehot(z_loss):
  logits, batch = _case(seed=2)
  grad = jax.grad(lambda x: cross_entropy_sums(x, batch, z_loss)[0])(logits)
  logp, log_z = _np_log_softmax(logits)
  p = np.exp(logp)
  onehot = np.eye(V)[batch['targets']]
  w = batch['weights'].astype(np.float64)[..., None]
  # d/dx [logZ - x_t] = softmax - onehot; d/dx z * logZ^2 = 2 z logZ softmax.
  want = w * (p - onehot) + z_loss * w * 2 * log_z[..., None] * p
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)
  assert np.all(grad[2] == 0) and np.all(grad[0, 3:] == 0)


@pytest.mark.parametrize('temperature', [1.0, 2.5])
def test_kl_divergence_sums_match_numpy(temperature):
  rng = np.random.default_rng(3)
  student = (2 * rng.standard_normal((B, L, V))).astype(np.float32)
  teacher = (2 * rng.standard_normal((B, L, V))).astype(np.float32)
  weights = np.ones((B, L), np.float32)
  weights[1, 2:] = 0.0
  got = kl_divergence_sums(student, teacher, weights, temperature)
  t_logp, _ = _np_log_softmax(teacher / temperature)
  s_logp, _ = _np_log_softmax(student / temperature)
  kl = np.sum(np.exp(t_logp) * (t_logp - s_logp), -1)
  want = np.sum(kl * weights) * temperature ** 2
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # KL(p || p) = 0 and KL >= 0.
  np.testing.assert_allclose(
      kl_divergence_sums(teacher, teacher, weights, temperature), 0.0, atol=1e-5)
  assert float(got) > 0
