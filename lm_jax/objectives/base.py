"""The objective interface and the one place metric sums become means."""

from typing import Protocol

import jax
import jax.numpy as jnp

Sums = tuple[jax.Array, dict, jax.Array]  # (objective sum, {metric: sum}, weight sum)


class Objective(Protocol):
  """A loss over a batch, as sums (see lm_jax/objectives/__init__.py)."""

  def __call__(self, outputs: dict, batch: dict) -> Sums:
    """Training: the objective sum, the metric sums and the weight sum of `batch`."""

  def evaluate(self, outputs: dict, batch: dict) -> Sums:
    """Evaluation: the same, with the extra metrics only evaluation reports."""


def mean_metrics(metric_sums: dict, weight_sum, maximum=jnp.maximum) -> dict:
  """{name: sum / weight}. A metric given as (sum, weight) uses its own weight.

  `maximum=max` computes in Python floats (host-side sums, full precision).
  """
  weight = maximum(weight_sum, 1.0)

  def mean(value):
    if isinstance(value, tuple):
      total, own_weight = value
      return total / maximum(own_weight, 1.0)
    return value / weight

  return {name: mean(value) for name, value in metric_sums.items()}
