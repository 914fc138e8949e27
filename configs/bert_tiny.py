"""A tiny BERT (2 layers, d_model 128, 2 heads: BERT-tiny's shape) for CPU, about a minute.

Masked LM + next-sentence prediction on this Python's standard library, byte tokens.

    lm-jax train --config configs/bert_tiny.py
    lm-jax train --config configs/bert_tiny.py:runlocal   # seconds, for smoke tests
    lm-jax eval --config configs/bert_tiny.py            # masked-token loss, accuracy, bpb
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.model.family = 'encoder'
  c.model.update(num_layers=2, d_model=128, num_heads=2, max_len=128, use_bias=True,
                 norm_eps=1e-12)
  c.model.encoder.update(norm_position='post', nsp_head=True)
  c.objective.name = 'mlm'
  c.data.update(seq_len=128, mlm_probability=0.15, nsp=True)
  c.optimizer.update(lr=1e-3, warmup_steps=30, weight_decay=0.01)
  c.train.update(steps=300, global_batch_size=16, eval_every=100)
  c.checkpoint.every = 100
  c.logging.run_dir = 'runs/bert_tiny'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'bert_tiny')
  return c
