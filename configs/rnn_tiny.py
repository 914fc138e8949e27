"""A small byte-level vanilla (tanh Elman) RNN LM on this Python's standard library, CPU, a few minutes.

    lm-jax train --config configs/rnn_tiny.py
    lm-jax train --config configs/rnn_tiny.py:runlocal   # seconds, for smoke tests

Embedding 128, two layers of 512 state features, a tied head (the top state is
projected to 128): about 1M parameters, like configs/quickstart.py's decoder.
See docs/families_rnn_cnn.md.
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.model.family = 'rnn'
  c.model.rnn.cell = 'rnn'
  c.model.update(num_layers=2, d_model=128)
  c.model.rnn.hidden_size = 512
  c.train.steps = 300
  c.train.eval_every = 100
  c.optimizer.warmup_steps = 30
  c.checkpoint.every = 100
  c.logging.run_dir = 'runs/rnn_tiny'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'rnn_tiny')
    c.model.rnn.hidden_size = 0  # = d_model
  return c
