"""Objectives against NumPy (float64) references written from the formulas."""

import jax
import numpy as np
import pytest

from lm_jax.objectives import mean_metrics
from lm_jax.objectives.cross_entropy import CrossEntropy
from lm_jax.objectives.kl import kl_divergence_sums

B, L, V = 3, 5, 11


def _np_log_softmax(x):
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  log_z = m + np.log(np.exp(x - m).sum(-1, keepdims=True))
  return x - log_z, log_z[..., 0]


def cross_entropy_sums(logits, batch, z_loss=0.0, label_smoothing=0.0, vocab_size=V):
  """(objective sum, {'loss_sum', 'z_loss_sum', 'weight_sum'}) of the CE objective."""
  objective, sums, weight = CrossEntropy(vocab_size=vocab_size, z_loss=z_loss,
                                         label_smoothing=label_smoothing)(
                                             {'logits': logits}, batch)
  return objective, {'loss_sum': sums['loss'], 'z_loss_sum': sums['log_z_squared'],
                     'weight_sum': weight}


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


@pytest.mark.parametrize('eps', [0.1, 0.3])
def test_label_smoothing_is_kl_to_the_smoothed_target(eps):
  """Objective = sum_t w_t KL(q_t || p_t), q = (1-eps) onehot + eps/V over the real
  vocabulary; padded vocabulary rows (logit -1e9) get no target mass."""
  logits, batch = _case(seed=4)
  real_v = V - 3
  logits = logits.copy()
  logits[..., real_v:] = -1e9  # the model's padding rows
  targets = batch['targets'] % real_v
  batch = dict(batch, targets=targets)
  objective, aux = cross_entropy_sums(logits, batch, label_smoothing=eps,
                                      vocab_size=real_v)
  logp, _ = _np_log_softmax(logits[..., :real_v])
  q = np.full(logp.shape, eps / real_v)
  np.put_along_axis(q, targets[..., None], 1 - eps + eps / real_v, -1)
  kl = np.sum(q * (np.log(q) - logp), -1)
  np.testing.assert_allclose(objective, np.sum(kl * batch['weights']), rtol=1e-4)
  # The reported loss stays the plain NLL of the targets.
  nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(aux['loss_sum'], np.sum(nll * batch['weights']), rtol=1e-5)
  # KL to the smoothed target is 0 exactly when p = q.
  zero, _ = cross_entropy_sums(np.log(q).astype(np.float32), batch, label_smoothing=eps,
                               vocab_size=real_v)
  np.testing.assert_allclose(zero, 0.0, atol=1e-4)


def test_eval_metrics_accuracy_and_entropy_match_numpy():
  logits, batch = _case(seed=5)
  _, sums, weight = CrossEntropy(vocab_size=V).evaluate({'logits': logits}, batch)
  means = mean_metrics(sums, weight)
  logp, _ = _np_log_softmax(logits)
  w = batch['weights'].astype(np.float64)
  entropy = -np.sum(np.exp(logp) * logp, -1)
  correct = (np.argmax(logits, -1) == batch['targets'])
  np.testing.assert_allclose(means['entropy'], np.sum(entropy * w) / w.sum(), rtol=1e-5)
  np.testing.assert_allclose(means['accuracy'], np.sum(correct * w) / w.sum(), rtol=1e-6)


def test_metric_with_its_own_weight_is_divided_by_it():
  means = mean_metrics({'a': 6.0, 'b': (3.0, 2.0)}, 4.0)
  assert means == {'a': 1.5, 'b': 1.5}


def test_kl_two_outcome_worked_example():
  """P = (0.5, 0.5), Q = (0.6, 0.4): D_KL(P || Q) = 0.0204 nats = 0.0294 bits
  (0.5 ln(0.5/0.6) + 0.5 ln(0.5/0.4), by hand; the often-copied 0.0458 is wrong)."""
  teacher = np.log(np.array([[[0.5, 0.5]]], np.float32))
  student = np.log(np.array([[[0.6, 0.4]]], np.float32))
  nats = float(kl_divergence_sums(student, teacher, np.ones((1, 1), np.float32)))
  assert nats == pytest.approx(0.020410, abs=2e-6)
  assert nats / np.log(2) == pytest.approx(0.029447, abs=3e-6)
