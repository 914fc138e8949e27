"""A sweep's results: one table row per run (swept values, final metrics) and PNG plots.

Reads each run's `metrics.jsonl` and writes, in the sweep directory:
  results.csv            every run, its swept values, state, last step and the
                         last value of every train/* and eval/* metric
  results.md             the same rows, main metrics only (a Markdown table)
  loss_curves.png        train loss (lines) and eval loss (dots) against step, per run
  final_vs_<key>.png     the final eval loss (train loss without evals) against
                         each swept value, one line per setting of the other keys
"""

import csv
import math
import os
from typing import Any, Sequence

from lm_jax.metrics.writers import JSONL_NAME, format_number, read_jsonl
from lm_jax.sweep.runner import run_state
from lm_jax.sweep.spec import SweepRun, format_value, short_keys

MAIN_METRICS = ('train/loss', 'eval/loss', 'eval/bits_per_byte')
Row = dict[str, Any]


def final_metrics(records: Sequence[dict]) -> dict[str, float]:
  """The last value of every train/* and eval/* metric, and the last step logged."""
  final = {}
  for record in records:
    for key, value in record.items():
      if key.startswith(('train/', 'eval/')):
        final[key] = value
  steps = [r['step'] for r in records if isinstance(r.get('step'), int)]
  return {'step': max(steps), **final} if steps else final


def swept_columns(runs: Sequence[SweepRun]) -> dict[str, str]:
  """{config key: column name} over all runs' swept keys, in order of first appearance."""
  keys = list(dict.fromkeys(k for run in runs for k in run.swept))
  return short_keys(keys)


def collect_rows(config: str, runs: Sequence[SweepRun]) -> tuple[list[Row], dict]:
  """One row per run, and every run's metric records by run name."""
  columns = swept_columns(runs)
  rows, records = [], {}
  for run in runs:
    records[run.name] = read_jsonl(os.path.join(run.run_dir, JSONL_NAME))
    row = {'run': run.name}
    row.update({col: run.swept.get(key, '') for key, col in columns.items()})
    row['state'] = run_state(config, run)
    row.update(final_metrics(records[run.name]))
    rows.append(row)
  return rows, records


def _header(rows: Sequence[Row]) -> list[str]:
  return list(dict.fromkeys(k for row in rows for k in row))


def write_csv(rows: Sequence[Row], path: str) -> None:
  """All columns; a run without a metric leaves its cell empty."""
  header = _header(rows)
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.DictWriter(f, fieldnames=header, restval='')
    writer.writeheader()
    writer.writerows(rows)


def _cell(value, swept: bool) -> str:
  if value == '':
    return ''
  if swept:
    return format_value(value)  # as the run name spells it
  return format_number(value) if isinstance(value, float) else str(value)


def write_markdown(rows: Sequence[Row], swept: Sequence[str], path: str) -> None:
  """Run, swept values, state, step and the main metrics that any run has."""
  present = set(_header(rows))
  header = ['run', *swept, 'state', 'step', *[m for m in MAIN_METRICS if m in present]]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(_cell(row.get(h, ''), h in swept) for h in header) + ' |'
            for row in rows]
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines) + '\n')


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plot_curves(records: dict, path: str) -> None:
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for i, (name, recs) in enumerate(records.items()):
    color = f'C{i % 10}'
    train = [(r['step'], r['train/loss']) for r in recs if 'train/loss' in r]
    evals = [(r['step'], r['eval/loss']) for r in recs if 'eval/loss' in r]
    if train:
      ax.plot(*zip(*train), color=color, label=name, linewidth=1.2)
    if evals:
      ax.plot(*zip(*evals), 'o', color=color, markersize=4,
              label=None if train else name)
  ax.set_xlabel('step')
  ax.set_ylabel('loss (lines: train, dots: eval)')
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _plot_final(rows: Sequence[Row], column: str, others: Sequence[str], metric: str,
                path: str) -> None:
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  points = [r for r in rows if _is_number(r.get(metric)) and math.isfinite(r[metric])
            and r.get(column, '') != '']
  numeric = all(_is_number(r[column]) for r in points)
  categories = list(dict.fromkeys(str(r[column]) for r in points))
  fig, ax = plt.subplots(figsize=(5.5, 4))
  groups = {}
  for r in points:
    groups.setdefault(tuple(r.get(o, '') for o in others), []).append(r)
  for i, (setting, group) in enumerate(groups.items()):
    xs = [r[column] if numeric else categories.index(str(r[column])) for r in group]
    order = sorted(range(len(xs)), key=xs.__getitem__)
    label = ','.join(f'{o}={v}' for o, v in zip(others, setting) if v != '') or None
    ax.plot([xs[j] for j in order], [group[j][metric] for j in order], 'o-', color=f'C{i % 10}',
            label=label)
  xs = [r[column] for r in points]
  if numeric and xs and min(xs) > 0 and max(xs) / min(xs) >= 3:
    ax.set_xscale('log')
  if not numeric:
    ax.set_xticks(range(len(categories)), categories)
  ax.set_xlabel(column)
  ax.set_ylabel(f'final {metric}')
  if any(ax.get_legend_handles_labels()[1]):
    ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def collect(config: str, runs: Sequence[SweepRun], directory: str) -> list[str]:
  """Writes the table and the plots into `directory`; returns the paths written."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  os.makedirs(directory, exist_ok=True)
  rows, records = collect_rows(config, runs)
  swept = list(swept_columns(runs).values())
  paths = [os.path.join(directory, 'results.csv'), os.path.join(directory, 'results.md')]
  write_csv(rows, paths[0])
  write_markdown(rows, swept, paths[1])
  with_metrics = {name: recs for name, recs in records.items() if recs}
  if with_metrics:
    paths.append(os.path.join(directory, 'loss_curves.png'))
    _plot_curves(with_metrics, paths[-1])
  metric = 'eval/loss' if any('eval/loss' in r for r in rows) else 'train/loss'
  if any(metric in r for r in rows):
    for column in swept:
      paths.append(os.path.join(directory, f'final_vs_{column}.png'))
      _plot_final(rows, column, [c for c in swept if c != column], metric, paths[-1])
  return paths
