"""Watching one validation metric: the best evaluation so far, and early stopping.

Every metric of lm_jax.evaluate (loss, perplexity, bits_per_byte) is lower
is better. An evaluation *improves* when its value is below the reference by
more than `min_delta`; the reference is the value of the last improvement (as
Keras's EarlyStopping counts). The run stops once `patience` evaluations in a
row have not improved (patience 0: never). The *best* evaluation is simply the
lowest value, whatever min_delta: the loop keeps its checkpoint.
"""

import dataclasses
import logging
import math
from typing import Any


@dataclasses.dataclass
class MetricWatch:
  """The best value of `metric` and the evaluations since it last improved."""
  metric: str
  patience: int = 0
  min_delta: float = 0.0
  best_value: float = math.inf
  best_step: int | None = None
  reference: float = math.inf
  stale_evals: int = 0

  @classmethod
  def from_config(cls, train_cfg) -> 'MetricWatch':
    """A fresh watch of train.early_stop_metric / _patience / _min_delta."""
    return cls(train_cfg.early_stop_metric, train_cfg.early_stop_patience,
               train_cfg.early_stop_min_delta)

  def observe(self, step: int, metrics: dict[str, float]) -> bool:
    """Counts one evaluation at `step`; returns whether it is the best so far."""
    value = metrics[self.metric]
    if value < self.reference - self.min_delta:  # NaN is never an improvement
      self.reference, self.stale_evals = value, 0
    else:
      self.stale_evals += 1
    if value < self.best_value:
      self.best_value, self.best_step = value, step
      return True
    return False

  @property
  def should_stop(self) -> bool:
    return self.patience > 0 and self.stale_evals >= self.patience

  def reason(self) -> str:
    """Why the run stops (for the log)."""
    return (f'early stopping: eval/{self.metric} has not improved by more than '
            f'{self.min_delta:g} for {self.stale_evals} evaluations '
            f'(train.early_stop_patience={self.patience}); the best is '
            f'{self.best_value:.6g} at step {self.best_step}')

  def state(self) -> dict[str, Any]:
    """JSON-ready state, saved in each checkpoint."""
    finite = lambda v: v if math.isfinite(v) else None
    return {'metric': self.metric, 'best_value': finite(self.best_value),
            'best_step': self.best_step, 'reference': finite(self.reference),
            'stale_evals': self.stale_evals}

  def load(self, saved: dict[str, Any] | None):
    """Continues from a saved `state()`; one of another metric is dropped."""
    if saved is None:
      return
    if saved['metric'] != self.metric:
      logging.warning('the checkpoint tracked eval/%s, the config asks for eval/%s: '
                      'the best checkpoint and early stopping start afresh',
                      saved['metric'], self.metric)
      return
    unset = lambda v: math.inf if v is None else v
    self.best_value, self.best_step = unset(saved['best_value']), saved['best_step']
    self.reference = unset(saved['reference'])
    self.stale_evals = saved['stale_evals']
