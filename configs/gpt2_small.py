"""GPT-2 small (124M) for accelerators, after Karpathy's build-nanogpt / llm.c recipe.

124,475,904 params (50304-row tied embedding 38.6M + 1024 positions 0.8M + 12 layers 85.1M).

Point data.source at a real corpus (a file, glob or directory):
    lm-jax train --config configs/gpt2_small.py --config.data.source=/data/owt/*.txt
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.data.tokenizer = 'bpe'
  c.data.bpe_vocab_size = 50257     # GPT-2's vocabulary; vocab_multiple 64 pads it to 50304
  c.data.max_bytes = 0              # no limit: the whole corpus
  c.data.seq_len = 1024

  c.model.num_layers = 12
  c.model.num_heads = 12
  c.model.d_model = 768
  c.model.max_len = 1024
  c.model.use_bias = True           # GPT-2 has biases; learned positions, layernorm, gelu, tied
  c.model.dtype = 'bfloat16'        # bf16 compute, float32 params and optimizer state
  c.model.remat = 'dots_saveable'

  # build-nanogpt: max lr 6e-4, 715 warmup steps, cosine to 10% (min_lr_ratio 0.1 default),
  # b2 0.95, wd 0.1, clip 1.0 (defaults), 19073 steps of 524288 tokens (512 sequences).
  # Here 32 sequences a step (2 microbatches of 16); for the full recipe's batch use
  # --config.train.global_batch_size=512 --config.train.microbatches=32.
  c.optimizer.lr = 6e-4
  c.optimizer.warmup_steps = 715
  c.train.steps = 19073
  c.train.global_batch_size = 32
  c.train.microbatches = 2
  c.train.eval_every = 250
  c.train.eval_batches = 20
  c.checkpoint.every = 1000
  c.logging.run_dir = 'runs/gpt2_small'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'gpt2_small')
    c.data.bpe_vocab_size = 512
  return c
