"""nanoGPT's CPU recipe for shakespeare_char (see ../shared/data/README.md).

Published: val loss ~1.88 after 2000 iterations (20 eval batches).
    lm-jax train --config configs/shakespeare_char.py
Needs ../shared/data/tinyshakespeare.txt (relative to the project root).
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.data.source = '../shared/data/tinyshakespeare.txt'
  c.data.tokenizer = 'char'         # 65 characters; padded to vocab_multiple 64 -> 128 rows
  c.data.max_bytes = 0              # the whole 1.1 MB corpus; val_fraction 0.1 = last 10%
  c.data.test_fraction = 0.0        # nanoGPT's 90/10 train/val split: no test split

  # Model: 4 layers, 4 heads, d_model 128, context 64, no biases, tied, dropout 0
  # (the defaults give learned positions, layernorm, 4x gelu MLP, no bias, tied, dropout 0).
  c.model.max_len = 64
  c.data.seq_len = 64

  # AdamW lr 1e-3, 100 warmup, cosine to 1e-4 over 2000 steps, b2 0.99, wd 0.1, clip 1.0
  # (lr, warmup, min_lr_ratio 0.1, wd and clip are the defaults).
  c.optimizer.b2 = 0.99
  c.train.steps = 2000
  c.train.global_batch_size = 12
  c.train.eval_every = 250
  c.train.eval_batches = 20
  c.logging.run_dir = 'runs/shakespeare_char'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'shakespeare_char')
    c.data.max_bytes = 0  # the corpus is small already; keep its whole alphabet
  return c
