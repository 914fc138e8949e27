"""A Llama-style ~1B decoder (GQA, RoPE, RMSNorm, SwiGLU), FSDP over all devices.

1,104,218,112 params: untied 32000x2048 embeddings 2 x 65.5M + 16 layers x 60.8M + final norm.

    lm-jax train --config configs/llama_1b.py --config.data.source=/data/corpus/
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.data.tokenizer = 'bpe'
  c.data.bpe_vocab_size = 32000     # Llama 2's vocabulary size (a multiple of 64 already)
  c.data.max_bytes = 0              # no limit: the whole corpus
  c.data.seq_len = 2048

  c.model.num_layers = 16
  c.model.d_model = 2048
  c.model.num_heads = 32            # head_dim 64
  c.model.num_kv_heads = 8          # GQA: 4 query heads per kv head
  c.model.mlp_dim = 8192
  c.model.max_len = 2048
  c.model.position = 'rope'
  c.model.norm = 'rmsnorm'
  c.model.mlp = 'swiglu'
  c.model.tie_embeddings = False
  c.model.dtype = 'bfloat16'        # bf16 compute, float32 params and optimizer state
  c.model.scan_layers = True
  c.model.remat = 'full'

  # Llama 2 paper: lr 3e-4, 2000 warmup steps, cosine to 10% (min_lr_ratio 0.1 default),
  # b2 0.95, eps 1e-5, wd 0.1, clip 1.0 (defaults). 32 x 2048 = 65536 tokens a step.
  c.optimizer.lr = 3e-4
  c.optimizer.warmup_steps = 2000
  c.optimizer.eps = 1e-5
  c.train.steps = 20000
  c.train.global_batch_size = 32
  c.train.microbatches = 4
  c.train.eval_every = 500
  c.train.eval_batches = 20
  c.checkpoint.every = 1000
  c.mesh.data = 1
  c.mesh.fsdp = -1                  # ZeRO-3 over every device
  c.logging.run_dir = 'runs/llama_1b'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'llama_1b')
    c.data.bpe_vocab_size = 512
    c.model.update(d_model=64, num_heads=4, num_kv_heads=2, mlp_dim=128)
    c.train.microbatches = 2
  return c
