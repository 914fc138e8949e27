"""MetricWatch on hand-written sequences of validation losses, and its config checks."""

import math

import jax
import numpy as np
import pytest

from lm_jax.config import ConfigError, base_config, validate
from lm_jax.config.validate import CHOICES
from lm_jax.evaluate import eval_metrics
from lm_jax.objectives.cross_entropy import CrossEntropy
from lm_jax.train.early_stopping import MetricWatch


def _run(values, patience, min_delta=0.0):
  """Feeds evaluations at steps 10, 20, ...; returns (watch, new-best flags, stop step)."""
  watch, flags = MetricWatch('loss', patience, min_delta), []
  for i, v in enumerate(values):
    flags.append(watch.observe(10 * (i + 1), {'loss': v}))
    if watch.should_stop:
      return watch, flags, 10 * (i + 1)
  return watch, flags, None


def test_stops_after_patience_evaluations_without_improvement():
  watch, flags, stop = _run([3.0, 2.5, 2.6, 2.55, 2.7, 1.0], patience=3)
  assert stop == 50  # 2.6, 2.55, 2.7 do not beat 2.5
  assert flags == [True, True, False, False, False]
  assert (watch.best_value, watch.best_step) == (2.5, 20)


def test_an_improvement_resets_the_count():
  _, _, stop = _run([3.0, 3.1, 3.2, 2.9, 3.0, 3.1, 3.3], patience=3)
  assert stop == 70  # 2.9 at step 40 restarts the count: 3.0, 3.1, 3.3


def test_min_delta_small_gains_count_as_no_improvement_but_still_are_the_best():
  # Each eval is 0.01 lower: below min_delta=0.05, so none improves...
  watch, flags, stop = _run([2.0, 1.99, 1.98, 1.97], patience=2, min_delta=0.05)
  assert stop == 30
  # ...but each is the lowest so far: the best checkpoint follows them.
  assert flags == [True, True, True]
  assert watch.best_step == 30


def test_min_delta_compares_with_the_last_improvement():
  # 0.03 steps add up: 2.0 -> 1.94 is more than 0.05 below the reference 2.0.
  _, _, stop = _run([2.0, 1.97, 1.94, 1.91, 1.88], patience=2, min_delta=0.05)
  assert stop is None


def test_patience_zero_never_stops_and_nan_is_never_best():
  watch, flags, stop = _run([2.0, math.nan, 3.0, 4.0], patience=0)
  assert stop is None and flags == [True, False, False, False]
  assert watch.best_step == 10


def test_state_round_trip_continues_the_count():
  watch, _, _ = _run([3.0, 2.0, 2.5], patience=3)
  resumed = MetricWatch('loss', 3)
  resumed.load(watch.state())
  assert not resumed.observe(40, {'loss': 2.4}) and not resumed.should_stop
  assert not resumed.observe(50, {'loss': 2.1}) and resumed.should_stop
  assert resumed.best_step == 20


def test_a_saved_state_of_another_metric_starts_afresh():
  watch, _, _ = _run([3.0, 2.0], patience=3)
  other = MetricWatch('bits_per_byte', 3)
  other.load(watch.state())
  assert other.best_step is None and other.stale_evals == 0


def test_metric_choices_are_metrics_evaluation_returns():
  # A real evaluation of the default objective on a small batch: every
  # early-stopping choice must be among the names it reports.
  objective = CrossEntropy(vocab_size=5)
  logits = np.random.default_rng(0).normal(size=(2, 3, 5)).astype(np.float32)
  batch = {'targets': np.array([[0, 1, 2], [3, 4, 0]], np.int32),
           'weights': np.ones((2, 3), np.float32)}
  _, sums, weight = objective.evaluate({'logits': logits}, batch)
  metrics = eval_metrics(jax.tree.map(float, sums), float(weight), byte_sum=6)
  assert set(CHOICES['train.early_stop_metric']) <= set(metrics)
  # Lower is better for every choice (the watch minimises): accuracy is not one.
  assert 'accuracy' in metrics and 'accuracy' not in CHOICES['train.early_stop_metric']


@pytest.mark.parametrize('overrides, message', [
    (dict(early_stop_metric='accuracy'), 'config.train.early_stop_metric'),
    (dict(early_stop_patience=-1), 'config.train.early_stop_patience'),
    (dict(early_stop_min_delta=-0.1), 'config.train.early_stop_min_delta'),
    (dict(early_stop_patience=2, eval_every=0), 'early stopping counts evaluations'),
])
def test_bad_early_stopping_config_is_refused(overrides, message):
  config = base_config()
  config.train.update(overrides)
  with pytest.raises(ConfigError, match=message):
    validate(config, device_count=1)
