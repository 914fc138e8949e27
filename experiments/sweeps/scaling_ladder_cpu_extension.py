"""The CPU ladder's runs added on 2026-12-02 to bracket its IsoFLOP minima, plus one rerun.

    nice -n 19 lm-jax sweep experiments/sweeps/scaling_ladder_cpu_extension.py --parallel 1
    python experiments/scaling/fit_scaling.py --ladder runs --budgets 1e12,3e12,1e13 \
        --with-points docs/scaling_cpu/first_ladder_points.json --out docs/scaling_cpu

The first CPU ladder (15 runs, experiments/sweeps/scaling_ladder_cpu.py with widths from 32
and D / N up to 500) had its best run at the smallest rung of every budget (docs/scaling.md).
ladder.py now adds the 1 x 16 rung and allows D / N up to 2500; this sweep is the CPU
budgets' runs that those two changes add, and FIRST_LADDER_CHECK, a run of the first ladder
run again so that its loss can be compared with the recorded one (the fit reuses the first
ladder's recorded points: their run directories are gone). Same sweep name and run names as
scaling_ladder_cpu.py, so running that one later reuses these.
"""

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments.scaling.ladder import ladder_runs, ladder_sweep  # noqa: E402
from experiments.sweeps.scaling_ladder_cpu import CPU_BUDGETS  # noqa: E402
from lm_jax.sweep import Sweep  # noqa: E402

FIRST_WIDTHS = (32, 48, 64, 80, 96, 112, 128)
FIRST_TOKENS_PER_PARAM = (1.0, 500.0)
FIRST_LADDER_CHECK = {'model.num_layers': 1, 'model.d_model': 48, 'train.steps': 1764}


def _key(overrides) -> tuple:
  return tuple(overrides[k] for k in ('model.num_layers', 'model.d_model', 'train.steps'))


def get_sweep() -> Sweep:
  full = ladder_sweep(budgets=CPU_BUDGETS)
  first = {_key(r.overrides()) for r in ladder_runs(
      budgets=CPU_BUDGETS, widths=FIRST_WIDTHS, tokens_per_param=FIRST_TOKENS_PER_PARAM)}
  keep = [r for r in full.runs
          if _key(r) not in first or _key(r) == _key(FIRST_LADDER_CHECK)]
  return dataclasses.replace(full, runs=keep)
