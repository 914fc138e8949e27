"""T5 v1.0 small (60.5M): 6 + 6 layers, d_model 512, 8 heads of 64, d_ff 2048, ReLU,
tied embeddings (decoder output scaled by d_model**-0.5), span corruption.

60,506,624 params: the 32128-row tied embedding 16.4M, encoder 18.9M, decoder 25.2M.
The vocabulary: a 32000-token BPE plus EOS, padding, the other specials and T5's
100 sentinels, padded to a multiple of 128 = 32128 rows, T5's size.

Point data.source at a real corpus (a file, glob or directory):
    lm-jax train --config configs/t5_small.py --config.data.source=/data/c4/*.txt
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.model.family = 'encdec'
  c.model.update(num_layers=6, d_model=512, num_heads=8, head_dim=64, mlp_dim=2048,
                 max_len=512, norm_eps=1e-6, tie_embeddings=True, vocab_multiple=128,
                 dropout=0.1, dtype='bfloat16')
  c.model.encdec.update(num_decoder_layers=6, feed_forward='relu',
                        relative_attention_num_buckets=32, relative_attention_max_distance=128)
  c.data.tokenizer = 'bpe'
  c.data.bpe_vocab_size = 32000
  c.data.max_bytes = 0              # no limit: the whole corpus
  c.data.task = 'span_corruption'
  c.data.seq_len = 512              # T5: 568 raw tokens -> 512 inputs, 114 targets

  # T5 pre-trains with 128 sequences of 512 tokens; inverse-sqrt lr with Adafactor there,
  # AdamW with warmup and cosine decay here.
  c.optimizer.lr = 1e-3
  c.optimizer.warmup_steps = 1000
  c.optimizer.b2 = 0.99
  c.train.steps = 50000
  c.train.global_batch_size = 128
  c.train.eval_every = 1000
  c.train.eval_batches = 20
  c.checkpoint.every = 2000
  c.logging.run_dir = 'runs/t5_small'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 't5_small')
    c.model.update(head_dim=16, mlp_dim=64, dtype='float32', vocab_multiple=64)
    c.data.bpe_vocab_size = 512
  return c
