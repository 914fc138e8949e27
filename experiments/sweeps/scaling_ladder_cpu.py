"""The ladder's three smallest budgets (1e12, 3e12, 1e13 train FLOPs; 19 runs): the CPU ladder of docs/scaling.md.

    lm-jax sweep experiments/sweeps/scaling_ladder_cpu.py --parallel 1
    python experiments/scaling/fit_scaling.py --ladder runs --budgets 1e12,3e12,1e13 \
        --out docs/scaling_cpu

Its runs are the full ladder's (experiments/sweeps/scaling_ladder.py, same sweep name and
run names), which adds the 3e13 budget: that budget alone needs more tokens than the
other three together, so running the full sweep later reuses these 15 runs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments.scaling.ladder import ladder_sweep  # noqa: E402
from lm_jax.sweep import Sweep  # noqa: E402

CPU_BUDGETS = (1e12, 3e12, 1e13)


def get_sweep() -> Sweep:
  return ladder_sweep(budgets=CPU_BUDGETS)
