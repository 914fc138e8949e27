"""(N, D, C, final loss) of the ladder's runs, read from a sweep directory."""

import os

import numpy as np

from experiments.scaling.ladder import ladder_runs, ladder_sweep
from experiments.scaling.laws import Points
from lm_jax.metrics.writers import JSONL_NAME, read_jsonl
from lm_jax.sweep.spec import expand


def final_loss(run_dir: str, metric: str = 'eval/loss') -> float | None:
  """The last `metric` in the run's metrics.jsonl, None when it has none."""
  values = [r[metric] for r in read_jsonl(os.path.join(run_dir, JSONL_NAME)) if metric in r]
  return float(values[-1]) if values else None


def ladder_points(root: str = 'runs', metric: str = 'eval/loss', **ladder) -> tuple[Points, list]:
  """The finished ladder runs under `root` as Points (C = the run's nominal budget), and the
  names of the runs that have no `metric` yet."""
  runs = ladder_runs(**ladder)
  sweep_runs = expand(ladder_sweep(**ladder), root)
  n, d, c, loss, missing = [], [], [], [], []
  for run, sweep_run in zip(runs, sweep_runs):
    value = final_loss(sweep_run.run_dir, metric)
    if value is None:
      missing.append(sweep_run.name)
      continue
    n.append(run.rung.params)
    d.append(run.tokens)
    c.append(run.budget)
    loss.append(value)
  return Points(*(np.asarray(x, float) for x in (n, d, c, loss))), missing
