"""Quickstart: a small byte-level GPT on this Python's standard library, CPU, ~2 minutes.

    lm-jax train --config configs/quickstart.py
    lm-jax train --config configs/quickstart.py:runlocal   # seconds, for smoke tests
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  # The defaults already are the quickstart model and data: byte tokenizer on
  # data.source='stdlib', 4 layers, d_model 128, 4 heads, seq_len 128, batch 16.
  c.train.steps = 300
  c.train.eval_every = 100
  c.optimizer.warmup_steps = 30
  c.checkpoint.every = 100
  c.logging.run_dir = 'runs/quickstart'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'quickstart')
  return c
