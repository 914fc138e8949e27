"""Quickstart: a small byte-level GPT on this Python's standard library, CPU, ~2 minutes.

    lm-jax train --config configs/quickstart.py
    lm-jax train --config configs/quickstart.py:runlocal   # seconds, for smoke tests
"""

from lm_jax.config.defaults import base_config
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
    c.data.max_bytes = 200_000
    c.model.num_layers = 2
    c.model.d_model = 32
    c.model.num_heads = 2
    c.model.max_len = 32
    c.data.seq_len = 32
    c.train.global_batch_size = 4
    c.train.steps = 5
    c.train.eval_every = 5
    c.train.eval_batches = 1
    c.train.log_every = 1
    c.optimizer.warmup_steps = 1
    c.checkpoint.every = 5
    c.logging.run_dir = 'runs/quickstart_runlocal'
  return c
