"""What a sweep is: a base config, a list of override sets, a name; and how runs are named.

A sweep file is a Python file with `get_sweep() -> Sweep`:

    from lm_jax.sweep import Sweep, grid

    def get_sweep() -> Sweep:
      return Sweep(name='lr_width', config='configs/quickstart.py:runlocal',
                   runs=grid({'optimizer.lr': [1e-3, 3e-3], 'model.d_model': [32, 64]}),
                   fixed={'train.steps': 20})

Keys are config keys in the `--config.a.b` dotted spelling, without the
`--config.` prefix ('optimizer.lr'). `runs` is a list of {key: value} dicts,
written out or made by `grid` (every combination), `sample` (seeded random
draws) or both added together. `fixed` applies to every run and is not part
of the run names. Each run gets its own directory `<root>/<name>/<run name>`,
the run name made from its overrides ('lr=0.001,d_model=32').
"""

import dataclasses
import hashlib
import itertools
import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from lm_jax.errors import ConfigError

Value = bool | int | float | str | tuple
Overrides = dict[str, Value]

# Every sweep run writes no progress bar: its stderr goes to a log file.
BASE_OVERRIDES: Overrides = {'logging.progress': False}
_SAFE_NAME = re.compile(r'[^A-Za-z0-9._,=+-]')
MAX_NAME_LEN = 120


@dataclasses.dataclass(frozen=True)
class LogUniform:
  """A float drawn with log(value) uniform in [log low, log high]."""
  low: float
  high: float


@dataclasses.dataclass(frozen=True)
class Uniform:
  """A float drawn uniformly in [low, high]."""
  low: float
  high: float


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A sweep: `runs` (override dicts) of the config at `config` ('file.py' or 'file.py:arg')."""
  name: str
  config: str
  runs: Sequence[Mapping[str, Value]]
  fixed: Mapping[str, Value] = dataclasses.field(default_factory=dict)
  root: str = 'runs'
  name_keys: Sequence[str] | None = None  # keys that make the run names (None: all of a run's)


@dataclasses.dataclass(frozen=True)
class SweepRun:
  """One run of a sweep: its name, directory, swept values and full override list."""
  name: str
  run_dir: str
  swept: Overrides        # this run's own overrides (the table's columns)
  overrides: list[str]    # every --config.a.b=value flag, run_dir excluded


def normalize_key(key: str) -> str:
  """'--config.optimizer.lr' | 'config.optimizer.lr' | 'optimizer.lr' -> 'optimizer.lr'."""
  if not isinstance(key, str):
    raise ConfigError(f'sweep key {key!r} is not a string; keys look like "optimizer.lr"')
  bare = key.removeprefix('--').removeprefix('config.')
  if not bare or any(not part for part in bare.split('.')) or '=' in bare:
    raise ConfigError(f'bad sweep key {key!r}: keys are config keys such as "optimizer.lr"')
  return bare


def grid(axes: Mapping[str, Sequence[Value]]) -> list[Overrides]:
  """Every combination of the axes' values, the last key varying fastest."""
  keys = [normalize_key(k) for k in axes]
  values = []
  for key, vals in zip(keys, axes.values()):
    if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence) or not vals:
      raise ConfigError(f'sweep grid axis {key!r} needs a non-empty list of values, got {vals!r}')
    values.append(list(vals))
  return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _round_significant(x: float, digits: int) -> float:
  """x rounded to `digits` significant digits, so that run names stay short."""
  if x == 0 or not math.isfinite(x):
    return x
  return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


def sample(space: Mapping[str, Any], n: int, seed: int, digits: int = 3) -> list[Overrides]:
  """`n` seeded random draws: a list is a uniform choice, LogUniform / Uniform a float range.

  Floats are rounded to `digits` significant digits (the run names show them).
  """
  if not isinstance(n, int) or n < 1:
    raise ConfigError(f'sweep sample: n must be a positive int, got {n!r}')
  rng = np.random.default_rng(seed)
  keys = [normalize_key(k) for k in space]
  draws = []
  for _ in range(n):
    draw = {}
    for key, dist in zip(keys, space.values()):
      if isinstance(dist, LogUniform):
        if not 0 < dist.low <= dist.high:
          raise ConfigError(f'sweep sample {key!r}: LogUniform needs 0 < low <= high, got {dist}')
        draw[key] = _round_significant(
            float(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))), digits)
      elif isinstance(dist, Uniform):
        draw[key] = _round_significant(float(rng.uniform(dist.low, dist.high)), digits)
      elif isinstance(dist, Sequence) and not isinstance(dist, str) and dist:
        draw[key] = dist[int(rng.integers(len(dist)))]
      else:
        raise ConfigError(f'sweep sample {key!r}: {dist!r} is not a list of choices, '
                          'a LogUniform(low, high) or a Uniform(low, high)')
    draws.append(draw)
  return draws


def format_value(value: Value) -> str:
  """The command-line text of a value: 0.001, 64, true, configs/x.py, (1, 2)."""
  if isinstance(value, bool):
    return 'true' if value else 'false'
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, (int, float, str)):
    return str(value) if not isinstance(value, float) else repr(value)
  if isinstance(value, (tuple, list)):
    return repr(tuple(value))
  raise ConfigError(f'sweep value {value!r} has type {type(value).__name__}; '
                    'use a bool, int, float, str or tuple')


def short_keys(keys: Sequence[str]) -> dict[str, str]:
  """Each key's last part ('optimizer.lr' -> 'lr'), the full key where two would clash."""
  leaves = [k.rpartition('.')[2] for k in keys]
  return {k: leaf if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves)}


def run_name(swept: Mapping[str, Value], keys: Sequence[str]) -> str:
  """'lr=0.001,d_model=32': filesystem-safe, hashed to MAX_NAME_LEN when longer."""
  if not keys:
    return 'base'
  short = short_keys(list(keys))
  name = ','.join(f'{short[k]}={format_value(swept[k])}' for k in keys)
  name = _SAFE_NAME.sub('_', name)
  if len(name) > MAX_NAME_LEN:
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    name = name[:MAX_NAME_LEN - 11] + '-' + digest
  return name


def flags(overrides: Mapping[str, Value]) -> list[str]:
  """{'optimizer.lr': 0.001} -> ['--config.optimizer.lr=0.001']."""
  return [f'--config.{k}={format_value(v)}' for k, v in overrides.items()]


def fixed_overrides(sweep: Sweep) -> Overrides:
  """What every run of the sweep gets before its own values: BASE_OVERRIDES, then Sweep.fixed."""
  return {**BASE_OVERRIDES, **{normalize_key(k): v for k, v in sweep.fixed.items()}}


def _check_name(name: str) -> None:
  if not isinstance(name, str) or not name or _SAFE_NAME.search(name) or name in ('.', '..'):
    raise ConfigError(f'sweep name {name!r} must be a non-empty directory name of letters, '
                      'digits and . _ , = + -')


def expand(sweep: Sweep, root: str | None = None) -> list[SweepRun]:
  """The sweep's runs, in order, each with its name, run dir and override flags."""
  _check_name(sweep.name)
  if not sweep.runs:
    raise ConfigError(f'sweep {sweep.name!r} has no runs')
  fixed = fixed_overrides(sweep)
  name_keys = None if sweep.name_keys is None else [normalize_key(k) for k in sweep.name_keys]
  directory = sweep_dir(sweep, root)
  runs, seen = [], {}
  for i, run in enumerate(sweep.runs):
    swept = {normalize_key(k): v for k, v in run.items()}
    if 'logging.run_dir' in swept or 'logging.run_dir' in fixed:
      raise ConfigError(f'sweep {sweep.name!r}: logging.run_dir is set by the sweep '
                        f'(<root>/<sweep>/<run name>); use Sweep.root to move it')
    keys = list(swept) if name_keys is None else [k for k in name_keys if k in swept]
    name = run_name(swept, keys)
    if name in seen:
      raise ConfigError(f'sweep {sweep.name!r}: runs {seen[name]} and {i} are both named '
                        f'{name!r}; make their swept values differ (or widen Sweep.name_keys)')
    seen[name] = i
    runs.append(SweepRun(name=name, run_dir=f'{directory}/{name}', swept=swept,
                         overrides=flags({**fixed, **swept})))
  return runs


def sweep_dir(sweep: Sweep, root: str | None = None) -> str:
  """`<root>/<name>`: where the sweep's runs, table and plots live."""
  return f'{(root or sweep.root).rstrip("/")}/{sweep.name}'
