"""BERT-base (110M) masked-LM + next-sentence pre-training, for accelerators (Devlin et al. 2019).

12 layers, d_model 768, 12 heads, MLP 3072, 512 positions, post-LN, exact GELU, biases,
LayerNorm eps 1e-12, dropout 0.1. lm_jax has no WordPiece tokenizer, so the vocabulary is a
30522-token BPE trained on the corpus; with [PAD] [CLS] [SEP] [MASK] (and the unused <eos>,
<bos> slots) after it the model embeds 30528 ids (a multiple of 64, no padding rows):
110,111,042 parameters (see `lm-jax plan`'s refusal: the planner does not model encoders).

    lm-jax train --config configs/bert_base.py --config.data.source=/data/books/*.txt
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.model.family = 'encoder'
  c.model.update(num_layers=12, d_model=768, num_heads=12, mlp_dim=3072, max_len=512,
                 use_bias=True, norm_eps=1e-12, dropout=0.1, dtype='bfloat16')
  c.model.encoder.update(norm_position='post', type_vocab_size=2, nsp_head=True)
  c.objective.name = 'mlm'
  c.data.update(tokenizer='bpe', bpe_vocab_size=30522, max_bytes=0, seq_len=512,
                mlm_probability=0.15, nsp=True)

  # BERT: Adam lr 1e-4, b2 0.999, wd 0.01, 10k warmup steps then linear decay, 1M steps of
  # 256 sequences (the paper's 90% at 128 tokens then 10% at 512 is two runs here).
  c.optimizer.update(lr=1e-4, b2=0.999, weight_decay=0.01, warmup_steps=10_000,
                     schedule='linear', min_lr_ratio=0.0)
  c.train.update(steps=1_000_000, global_batch_size=256, eval_every=5000, eval_batches=20)
  c.checkpoint.every = 10_000
  c.logging.run_dir = 'runs/bert_base'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'bert_base')
    c.model.update(mlp_dim=0, dropout=0.0, dtype='float32')
    c.data.bpe_vocab_size = 512
  return c
