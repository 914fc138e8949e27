"""The nanoGPT CPU speed reference: shakespeare_char's 'baby GPT' at context 256, batch 8.

6 layers, 6 heads, d_model 384, context 256, batch 8; GELU MLP (4x), LayerNorm,
learned positions, no biases, tied embeddings, char vocabulary of 65 (padded to
128 rows), dropout 0. nanoGPT trains this at ~1,950 tokens/s on the 2-core AMD
EPYC dev container (see docs/performance.md).

    python experiments/benchmark.py --config experiments/bench_nanogpt_cpu.py \
        --config.mesh.data=1 --steps 20 --warmup 3

Kept next to the benchmark, not in configs/ (those are training recipes that
tests/test_config.py checks one by one); `:runlocal` is a seconds-long smoke size.
"""

from lm_jax.config.defaults import base_config, shrink_to_runlocal
from lm_jax.config.loader import check_config_arg


def get_config(arg=None):
  check_config_arg(arg, ('runlocal',), __file__)
  c = base_config()
  c.data.source = '../shared/data/tinyshakespeare.txt'
  c.data.tokenizer = 'char'
  c.model.vocab_size = 65           # tinyshakespeare's characters; 128 embedding rows
  c.model.num_layers = 6
  c.model.d_model = 384
  c.model.num_heads = 6
  c.model.max_len = 256
  c.model.dropout = 0.0
  c.data.seq_len = 256
  c.train.global_batch_size = 8
  c.optimizer.b2 = 0.99
  c.logging.run_dir = 'runs/bench_nanogpt_cpu'

  if arg == 'runlocal':
    shrink_to_runlocal(c, 'bench_nanogpt_cpu')
  return c
