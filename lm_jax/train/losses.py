"""Token-level losses. Each returns *sums* so that accumulation over
microbatches and devices divides once, by the global number of tokens."""

import jax
import jax.numpy as jnp


def cross_entropy_sums(logits_BxLxV, batch, z_loss: float = 0.0):
  """Next-token cross entropy summed over weighted targets.

  Returns (objective_sum, aux) with aux = {'loss_sum', 'z_loss_sum', 'weight_sum'}:
  objective = cross entropy + z_loss * log(Z)^2 (PaLM's auxiliary loss).
  """
  targets_BxL, weights_BxL = batch['targets'], batch['weights']
  log_z_BxL = jax.nn.logsumexp(logits_BxLxV, axis=-1)
  target_logit_BxL = jnp.take_along_axis(
      logits_BxLxV, targets_BxL[..., None], axis=-1)[..., 0]
  nll_BxL = log_z_BxL - target_logit_BxL
  loss_sum = jnp.sum(nll_BxL * weights_BxL)
  z_loss_sum = jnp.sum(jnp.square(log_z_BxL) * weights_BxL)
  objective = loss_sum + z_loss * z_loss_sum
  return objective, {'loss_sum': loss_sum, 'z_loss_sum': z_loss_sum,
                     'weight_sum': jnp.sum(weights_BxL)}


def kl_divergence_sums(student_logits_BxLxV, teacher_logits_BxLxV, weights_BxL,
                       temperature: float = 1.0):
  """Sum over weighted positions of KL(teacher || student) at a temperature."""
  t_logp = jax.nn.log_softmax(teacher_logits_BxLxV / temperature, axis=-1)
  s_logp = jax.nn.log_softmax(student_logits_BxLxV / temperature, axis=-1)
  kl_BxL = jnp.sum(jnp.exp(t_logp) * (t_logp - s_logp), axis=-1)
  return jnp.sum(kl_BxL * weights_BxL) * temperature ** 2
