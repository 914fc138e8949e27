"""A small byte-level gated convolutional LM (Dauphin et al. 2017), CPU, a few minutes.

    lm-jax train --config configs/gated_cnn_tiny.py
    lm-jax train --config configs/gated_cnn_tiny.py:runlocal   # seconds, for smoke tests

Eight residual blocks of a 4-tap causal convolution with GLU at width 128 (a
receptive field of 25 bytes), pre-LayerNorm, tied head: about 1M parameters.
See docs/families_rnn_cnn.md.
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.model.family = 'cnn'
  c.model.update(num_layers=8, d_model=128)
  c.model.cnn.update(kernel_size=4, channels=0, pre_norm=True)
  c.train.steps = 300
  c.train.eval_every = 100
  c.optimizer.warmup_steps = 30
  c.checkpoint.every = 100
  c.logging.run_dir = 'runs/gated_cnn_tiny'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'gated_cnn_tiny')
  return c
