"""A tiny T5 (encdec family) pre-trained by span corruption on this Python's standard
library: byte tokenizer, CPU, a few minutes.

    lm-jax train --config configs/t5_tiny.py
    lm-jax train --config configs/t5_tiny.py:runlocal   # seconds, for smoke tests
    lm-jax eval  --config configs/t5_tiny.py             # loss / perplexity / bits per byte of the targets

Seq2seq on your own pairs instead:
    --config.data.task=seq2seq --config.data.seq2seq_path=pairs.jsonl --config.data.target_len=64
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.model.family = 'encdec'
  c.model.update(num_layers=2, d_model=128, num_heads=4, head_dim=32, mlp_dim=512,
                 max_len=128, norm_eps=1e-6)
  c.model.encdec.update(num_decoder_layers=2, feed_forward='gated-gelu')
  c.model.tie_embeddings = False    # T5.1.1: gated-GELU, untied LM head
  c.data.task = 'span_corruption'
  c.data.seq_len = 128              # encoder tokens; 141 raw tokens, 29 decoder targets
  c.train.steps = 500
  c.train.eval_every = 100
  c.optimizer.warmup_steps = 50
  c.checkpoint.every = 100
  c.logging.run_dir = 'runs/t5_tiny'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 't5_tiny')
    c.model.update(head_dim=16, mlp_dim=64)
  return c
