"""A 2x2 grid over the learning rate and the width of the quickstart's runlocal model (CPU, ~1 min).

    lm-jax sweep experiments/sweeps/quickstart_lr_width.py --dry-run
    lm-jax sweep experiments/sweeps/quickstart_lr_width.py --parallel 2
"""

from lm_jax.sweep import Sweep, grid


def get_sweep() -> Sweep:
  return Sweep(
      name='quickstart_lr_width',
      config='configs/quickstart.py:runlocal',
      runs=grid({'optimizer.lr': [1e-3, 3e-3], 'model.d_model': [32, 64]}),
      fixed={'train.steps': 20, 'train.eval_every': 10, 'checkpoint.every': 10},
  )
