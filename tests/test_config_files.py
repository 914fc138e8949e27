"""configs/*.py: each loads and validates; recipe numbers match their sources; derived values."""


import pytest

from lm_jax.config import (base_config, load_config,
                           validate)
from lm_jax.config import derived
from lm_jax.data.pipeline import split_bounds
from tests.config_fixtures import (CONFIGS, DEVICE_COUNTS, ROOT)


# ---------------------------------------------------------------------------
# Config files


@pytest.mark.parametrize('name', CONFIGS)
def test_config_file_loads_and_validates(name):
  c = load_config(str(ROOT / 'configs' / name))
  for n in DEVICE_COUNTS[name]:
    validate(c, device_count=n)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_file_runlocal_validates_on_one_device(name):
  c = load_config(str(ROOT / 'configs' / name) + ':runlocal')
  validate(c, device_count=1)
  assert c.train.steps <= 10 and c.model.d_model <= 64 and c.data.seq_len <= 64
  assert c.logging.run_dir.endswith('_runlocal')


def test_every_config_file_has_device_counts():
  assert set(CONFIGS) == set(DEVICE_COUNTS)


def test_shakespeare_char_matches_readme_recipe():
  # The numbers below are nanoGPT's CPU recipe as written in /work/shared/data/README.md
  # ("The published reference result on this corpus"); a change to them or to the
  # defaults they rely on must fail here.
  c = load_config(str(ROOT / 'configs' / 'shakespeare_char.py'))
  assert c.data.source == '../shared/data/tinyshakespeare.txt'
  assert c.data.tokenizer == 'char'
  assert c.data.val_fraction == 0.1          # 90% / 10% train/val split
  assert c.data.test_fraction == 0.0         # and no test split
  n = 1_115_394  # characters of tinyshakespeare; nanoGPT trains on data[:int(n * 0.9)]
  assert split_bounds(n, c.data.val_fraction, c.data.test_fraction) == (int(n * 0.9), n)
  assert c.model.num_layers == 4
  assert c.model.num_heads == 4
  assert c.model.d_model == 128
  assert c.data.seq_len == 64 and c.model.max_len == 64   # context 64
  assert c.train.global_batch_size == 12 and c.train.microbatches == 1
  assert c.model.dropout == 0.0
  assert c.optimizer.name == 'adamw'
  assert c.optimizer.lr == 1e-3
  assert c.optimizer.warmup_steps == 100
  assert c.optimizer.schedule == 'cosine'
  assert c.optimizer.lr * c.optimizer.min_lr_ratio == pytest.approx(1e-4)
  assert c.train.steps == 2000 and c.optimizer.decay_steps in (0, 2000)
  assert c.optimizer.b1 == 0.9 and c.optimizer.b2 == 0.99
  assert c.optimizer.weight_decay == 0.1
  assert c.optimizer.grad_clip == 1.0
  assert c.model.position == 'learned'
  assert c.model.norm == 'layernorm'
  assert c.model.mlp == 'gelu' and derived.mlp_dim(c.model) == 4 * 128
  assert c.model.use_bias is False
  assert c.model.tie_embeddings is True
  assert c.train.eval_batches == 20
  assert c.train.eval_every == 250
  assert c.model.vocab_multiple == base_config().model.vocab_multiple  # keeps tensor sharding
  assert c.logging.run_dir == 'runs/shakespeare_char'


def test_shakespeare_char_source_is_relative_to_project_root():
  path = ROOT / load_config(str(ROOT / 'configs' / 'shakespeare_char.py')).data.source
  if not path.parent.is_dir():
    pytest.skip('../shared/data is not present on this machine')
  assert path.is_file()


def _decoder_param_count(m, vocab):
  """Analytic count for a bias-free RMSNorm/SwiGLU decoder (as in the llama_1b comment)."""
  hd, kv, d = derived.head_dim(m), derived.num_kv_heads(m), m.d_model
  attn = d * m.num_heads * hd * 2 + d * kv * hd * 2
  mlp = 3 * d * derived.mlp_dim(m)
  layer = attn + mlp + 2 * d
  emb = derived.padded_vocab_size(vocab, m.vocab_multiple) * d
  return m.num_layers * layer + emb * (1 if m.tie_embeddings else 2) + d


def test_llama_1b_shape_and_param_count_comment():
  c = load_config(str(ROOT / 'configs' / 'llama_1b.py'))
  m = c.model
  assert (m.num_layers, m.d_model, m.num_heads, m.num_kv_heads, m.mlp_dim) == (16, 2048, 32, 8, 8192)
  assert (m.position, m.norm, m.mlp, m.use_bias, m.tie_embeddings) == (
      'rope', 'rmsnorm', 'swiglu', False, False)
  assert (c.mesh.data, c.mesh.fsdp) == (1, -1)
  n = _decoder_param_count(m, c.data.bpe_vocab_size)
  assert n == 1_104_218_112
  assert f'{n:,}' in (ROOT / 'configs' / 'llama_1b.py').read_text()


def test_gpt2_small_vocab_pads_to_50304():
  c = load_config(str(ROOT / 'configs' / 'gpt2_small.py'))
  assert derived.padded_vocab_size(c.data.bpe_vocab_size, c.model.vocab_multiple) == 50304


# ---------------------------------------------------------------------------
# derived values


def test_derived_values():
  m = base_config().model
  assert derived.head_dim(m) == 32 and derived.num_kv_heads(m) == 4
  assert derived.mlp_dim(m) == 512
  m.mlp = 'swiglu'
  m.d_model = 4096
  assert derived.mlp_dim(m) == 11008  # Llama-7B's hidden size
  assert derived.padded_vocab_size(65, 64) == 128
  assert derived.padded_vocab_size(50304, 64) == 50304
