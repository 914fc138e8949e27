"""Token cross entropy: label smoothing (as KL to the smoothed target) and z-loss.

One objective serves every family: what differs is which targets carry
weight, and the batch says that (next-token targets for decoders and
recurrent models, masked positions for MLM, target tokens for seq2seq).

With label smoothing eps the target is q = (1 - eps) onehot + eps / V over
the V real tokens (padding rows of the vocabulary get no mass), and the
objective is KL(q || p), which is cross entropy minus the constant entropy
of q: its minimum is 0 and its gradient is CE's. The reported `loss` is
always the plain negative log-likelihood of the targets, so perplexity and
bits per byte mean the same with and without smoothing.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def token_sums(logits_BxLxV, targets_BxL, weights_BxL, *, vocab_size: int,
               label_smoothing: float = 0.0, with_eval_metrics: bool = False) -> dict:
  """Weighted sums over positions: nll, log_z_squared, smoothed_kl; accuracy/entropy if asked."""
  logits_BxLxV = logits_BxLxV.astype(jnp.float32)
  log_z_BxL = jax.nn.logsumexp(logits_BxLxV, axis=-1)
  target_logit_BxL = jnp.take_along_axis(logits_BxLxV, targets_BxL[..., None], axis=-1)[..., 0]
  nll_BxL = log_z_BxL - target_logit_BxL
  sums = {'loss': jnp.sum(nll_BxL * weights_BxL),
          'log_z_squared': jnp.sum(jnp.square(log_z_BxL) * weights_BxL)}
  if label_smoothing > 0:
    eps, V = label_smoothing, vocab_size
    real_V = jnp.arange(logits_BxLxV.shape[-1]) < V
    # -sum_v q_v log p_v = (1 - eps) nll + eps * mean over real v of -log p_v.
    mean_neg_logp_BxL = log_z_BxL - jnp.sum(
        jnp.where(real_V, logits_BxLxV, 0.0), axis=-1) / V
    cross_BxL = (1 - eps) * nll_BxL + eps * mean_neg_logp_BxL
    sums['smoothed_kl'] = jnp.sum((cross_BxL - smoothed_target_entropy(eps, V)) * weights_BxL)
  if with_eval_metrics:
    p_BxLxV = jnp.exp(logits_BxLxV - log_z_BxL[..., None])
    entropy_BxL = log_z_BxL - jnp.sum(p_BxLxV * logits_BxLxV, axis=-1)
    sums['entropy'] = jnp.sum(entropy_BxL * weights_BxL)
    correct_BxL = jnp.argmax(logits_BxLxV, axis=-1) == targets_BxL
    sums['accuracy'] = jnp.sum(correct_BxL * weights_BxL)
  return sums


def smoothed_target_entropy(eps: float, vocab_size: int) -> float:
  """H(q) of the smoothed one-hot target: the constant that turns CE into KL."""
  on = 1 - eps + eps / vocab_size
  off = eps / vocab_size
  h = -on * np.log(on)
  if vocab_size > 1 and off > 0:
    h -= (vocab_size - 1) * off * np.log(off)
  return float(h)


@dataclasses.dataclass(frozen=True)
class CrossEntropy:
  """outputs['logits'] against batch['targets'] weighted by batch['weights']."""
  vocab_size: int
  label_smoothing: float = 0.0
  z_loss: float = 0.0

  def _sums(self, outputs, batch, with_eval_metrics: bool):
    sums = token_sums(outputs['logits'], batch['targets'], batch['weights'],
                      vocab_size=self.vocab_size, label_smoothing=self.label_smoothing,
                      with_eval_metrics=with_eval_metrics)
    fit = sums['smoothed_kl'] if self.label_smoothing > 0 else sums['loss']
    objective = fit + self.z_loss * sums['log_z_squared']
    return objective, sums, jnp.sum(batch['weights'])

  def __call__(self, outputs: dict, batch: dict):
    """(objective sum, {loss, log_z_squared[, smoothed_kl]} sums, weight sum)."""
    return self._sums(outputs, batch, with_eval_metrics=False)

  def evaluate(self, outputs: dict, batch: dict):
    """As __call__, plus the accuracy and predictive entropy sums."""
    return self._sums(outputs, batch, with_eval_metrics=True)
