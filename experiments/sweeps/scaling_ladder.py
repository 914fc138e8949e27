"""The IsoFLOP model ladder of experiments/scaling/ladder.py as a sweep (26 quickstart-decoder runs).

    python experiments/scaling/ladder.py                          # the ladder and its FLOPs
    lm-jax sweep experiments/sweeps/scaling_ladder.py --dry-run
    lm-jax sweep experiments/sweeps/scaling_ladder.py --parallel 2
    python experiments/scaling/fit_scaling.py --ladder runs --out runs/scaling_ladder/fit
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments.scaling.ladder import ladder_sweep  # noqa: E402
from lm_jax.sweep import Sweep  # noqa: E402


def get_sweep() -> Sweep:
  return ladder_sweep()
