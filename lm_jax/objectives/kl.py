"""KL divergence to soft targets (the distillation term)."""

import jax
import jax.numpy as jnp


def kl_divergence_sums(student_logits_BxLxV, teacher_logits_BxLxV, weights_BxL,
                       temperature: float = 1.0):
  """T^2 * sum over weighted positions of KL(teacher_T || student_T), both softened by T."""
  t_logp = jax.nn.log_softmax(teacher_logits_BxLxV.astype(jnp.float32) / temperature, axis=-1)
  s_logp = jax.nn.log_softmax(student_logits_BxLxV.astype(jnp.float32) / temperature, axis=-1)
  kl_BxL = jnp.sum(jnp.exp(t_logp) * (t_logp - s_logp), axis=-1)
  return jnp.sum(kl_BxL * weights_BxL) * temperature ** 2
