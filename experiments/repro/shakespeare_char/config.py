"""nanoGPT's shakespeare_char recipes (../shared/data/README.md), as lm_jax configs.

  cpu (default)  configs/shakespeare_char.py itself: 4 layers x 128, context 64, batch 12,
                 2000 steps; published val loss ~1.88.
  gpu            nanoGPT's train_shakespeare_char.py: 6 layers x 384, 6 heads, context 256,
                 batch 64, dropout 0.2, 5000 steps, eval over 200 batches; published 1.4697.
"""

import os

from lm_jax.config.loader import check_config_arg, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
CPU_CONFIG = os.path.join(ROOT, 'configs', 'shakespeare_char.py')
PUBLISHED = {'cpu': (2000, 1.88), 'gpu': (5000, 1.4697)}  # (steps, val loss)


def get_config(arg=None):
  check_config_arg(arg, ('cpu', 'gpu'), __file__)
  c = load_config(CPU_CONFIG)
  c.unlock()
  c.data.source = os.path.join(ROOT, '..', 'shared', 'data', 'tinyshakespeare.txt')
  if arg == 'gpu':
    c.model.update(num_layers=6, num_heads=6, d_model=384, max_len=256, dropout=0.2)
    c.data.seq_len = 256
    c.train.update(global_batch_size=64, steps=5000, eval_every=250, eval_batches=200)
    c.optimizer.update(lr=1e-3, warmup_steps=100, min_lr_ratio=0.1, b2=0.99)
    c.model.dtype = 'bfloat16'
    c.logging.run_dir = 'runs/repro_shakespeare_char_gpu'
  else:
    c.logging.run_dir = 'runs/repro_shakespeare_char_cpu'
  c.lock()
  return c
