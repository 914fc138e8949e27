"""Distillation: KL to a teacher's temperature-softened distribution, mixed with hard labels.

    objective = kl_weight * T^2 * KL(teacher_T || student_T)
                + (1 - kl_weight) * hard-label loss + z_loss * log(Z)^2

per weighted target position, where p_T = softmax(logits / T) (Hinton et al.
2015). The T^2 keeps the soft term's gradient on the scale of the hard one's
as T changes (d/dz of the softened KL shrinks as 1/T^2). The hard-label loss
is cross entropy, or KL to the label-smoothed target when label_smoothing > 0.
The teacher's logits come in the batch (lm_jax/objectives/teacher.py); the KL
runs over the first `vocab_size` ids, the real vocabulary both models share
(their padded rows may differ).

Metrics: `loss` stays the plain NLL of the targets (perplexity and bits per
byte mean what they mean for cross entropy), `kl` is the T^2-scaled term as
trained.
"""

import dataclasses

import jax.numpy as jnp

from lm_jax.objectives.cross_entropy import token_sums
from lm_jax.objectives.kl import kl_divergence_sums
from lm_jax.objectives.teacher import TEACHER_LOGITS


@dataclasses.dataclass(frozen=True)
class Distillation:
  """outputs['logits'] against batch[TEACHER_LOGITS] (soft) and batch['targets'] (hard)."""
  vocab_size: int
  temperature: float = 1.0
  kl_weight: float = 0.5
  label_smoothing: float = 0.0
  z_loss: float = 0.0

  def _sums(self, outputs, batch, with_eval_metrics: bool):
    logits_BxLxV = outputs['logits']
    sums = token_sums(logits_BxLxV, batch['targets'], batch['weights'],
                      vocab_size=self.vocab_size, label_smoothing=self.label_smoothing,
                      with_eval_metrics=with_eval_metrics)
    V = self.vocab_size
    sums['kl'] = kl_divergence_sums(logits_BxLxV[..., :V], batch[TEACHER_LOGITS][..., :V],
                                    batch['weights'], self.temperature)
    hard = sums['smoothed_kl'] if self.label_smoothing > 0 else sums['loss']
    objective = ((1 - self.kl_weight) * hard + self.kl_weight * sums['kl']
                 + self.z_loss * sums['log_z_squared'])
    return objective, sums, jnp.sum(batch['weights'])

  def __call__(self, outputs: dict, batch: dict):
    """(objective sum, {loss, log_z_squared, kl[, smoothed_kl]} sums, weight sum)."""
    return self._sums(outputs, batch, with_eval_metrics=False)

  def evaluate(self, outputs: dict, batch: dict):
    """As __call__, plus the accuracy and predictive entropy sums."""
    return self._sums(outputs, batch, with_eval_metrics=True)
