"""(N, D, C, final loss) of the ladder's runs, read from a sweep directory."""

import json
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


def recorded_points(path: str) -> Points:
  """Points saved as JSON ({'n': [...], 'd': [...], 'c': [...], 'loss': [...]}, e.g. a
  fit.json's 'points' or docs/scaling_cpu/first_ladder_points.json)."""
  with open(path, encoding='utf-8') as f:
    record = json.load(f)
  record = record.get('points', record)
  try:
    return Points(*(np.asarray(record[k], float) for k in ('n', 'd', 'c', 'loss')))
  except KeyError as e:
    raise ValueError(f'{path}: recorded points need the keys n, d, c, loss; {e} is missing') from e


def merge_points(measured: Points, recorded: Points) -> tuple[Points, list[tuple]]:
  """`measured` plus the `recorded` points that it does not hold (same N, D and C). Returns
  the merged points and, for each (N, D, C) in both, (n, d, c, recorded loss, measured loss):
  the measured loss is kept, the pair says how well a rerun reproduced the record."""
  have = {(n, d, c): loss for n, d, c, loss in
          zip(measured.n, measured.d, measured.c, measured.loss)}
  extra, both = [], []
  for n, d, c, loss in zip(recorded.n, recorded.d, recorded.c, recorded.loss):
    if (n, d, c) in have:
      both.append((n, d, c, float(loss), float(have[(n, d, c)])))
    else:
      extra.append((n, d, c, loss))
  columns = [np.concatenate([getattr(measured, k), np.asarray([e[i] for e in extra], float)])
             for i, k in enumerate(('n', 'd', 'c', 'loss'))]
  return Points(*columns), both
