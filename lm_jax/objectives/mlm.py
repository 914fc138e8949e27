"""Masked-LM objective (BERT): cross entropy on the masked positions, plus next-sentence
prediction when the batch has NSP labels.

The MLM part is token cross entropy (lm_jax/objectives/cross_entropy.py) with the
task's weights, which are 1 exactly at the selected positions; so `loss`,
perplexity, accuracy and bits per byte are over masked positions.

BERT's pre-training loss is mean(MLM) + mean(NSP). The step divides every sum
by one weight, the masked-token count, so each row's NSP cross entropy enters
the objective sum weighted by that row's masked-token count: the mean is then
mean(MLM) + mean(NSP) exactly when every row has the same count (the mlm task
selects round(p * n) tokens of every row), and gradient accumulation still
equals the big batch. `nsp_loss` and `nsp_accuracy` are means over rows.
"""

import dataclasses

import jax
import jax.numpy as jnp

from lm_jax.objectives.cross_entropy import token_sums


def nsp_sums(nsp_logits_Bx2, labels_B, row_weights_B) -> dict:
  """{'nsp_weighted': sum_b w_b nll_b, 'nsp_loss': (sum nll, B), 'nsp_accuracy': (correct, B)}."""
  logits_Bx2 = nsp_logits_Bx2.astype(jnp.float32)
  nll_B = (jax.nn.logsumexp(logits_Bx2, axis=-1)
           - jnp.take_along_axis(logits_Bx2, labels_B[:, None], axis=-1)[:, 0])
  rows = jnp.asarray(labels_B.shape[0], jnp.float32)
  correct = jnp.sum((jnp.argmax(logits_Bx2, axis=-1) == labels_B).astype(jnp.float32))
  return {'nsp_weighted': jnp.sum(nll_B * row_weights_B),
          'nsp_loss': (jnp.sum(nll_B), rows), 'nsp_accuracy': (correct, rows)}


@dataclasses.dataclass(frozen=True)
class MaskedLM:
  """outputs['logits'] against the masked targets (+ outputs['nsp_logits'] vs batch['nsp_labels'])."""
  vocab_size: int
  label_smoothing: float = 0.0
  z_loss: float = 0.0

  def _sums(self, outputs, batch, with_eval_metrics: bool):
    weights_BxL = batch['weights']
    sums = token_sums(outputs['logits'], batch['targets'], weights_BxL,
                      vocab_size=self.vocab_size, label_smoothing=self.label_smoothing,
                      with_eval_metrics=with_eval_metrics)
    fit = sums['smoothed_kl'] if self.label_smoothing > 0 else sums['loss']
    objective = fit + self.z_loss * sums['log_z_squared']
    if 'nsp_labels' in batch and 'nsp_logits' in outputs:
      nsp = nsp_sums(outputs['nsp_logits'], batch['nsp_labels'], jnp.sum(weights_BxL, axis=1))
      objective = objective + nsp.pop('nsp_weighted')
      sums.update(nsp)
    return objective, sums, jnp.sum(weights_BxL)

  def __call__(self, outputs: dict, batch: dict):
    """(objective sum, {loss, log_z_squared[, smoothed_kl][, nsp_loss, nsp_accuracy]}, weight)."""
    return self._sums(outputs, batch, with_eval_metrics=False)

  def evaluate(self, outputs: dict, batch: dict):
    """As __call__, plus the masked-token accuracy and predictive entropy sums."""
    return self._sums(outputs, batch, with_eval_metrics=True)
