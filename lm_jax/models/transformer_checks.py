"""Config checks shared by the Transformer families (decoder, encoder, encdec).

Each raises ConfigError naming the key (`config.model.x`), its value and what
would be valid. `check_transformer(config, mesh_shape)` runs them all.
"""

from lm_jax.config import derived
from lm_jax.errors import refuse_key


def check_heads(m) -> None:
  """Head size, GQA grouping and RoPE pairs."""
  if not m.head_dim and m.d_model % m.num_heads:
    refuse_key('model.d_model', m.d_model,
          f'not divisible by config.model.num_heads={m.num_heads} (with config.model.head_dim=0 '
          'the head size is d_model // num_heads); pick num_heads dividing d_model or set '
          'config.model.head_dim')
  kv = derived.num_kv_heads(m)
  if kv > m.num_heads or m.num_heads % kv:
    refuse_key('model.num_kv_heads', m.num_kv_heads,
          f'config.model.num_heads={m.num_heads} must be a multiple of num_kv_heads (GQA: each '
          f'kv head serves num_heads // num_kv_heads query heads); use a divisor of '
          f'{m.num_heads}, or 0 for num_kv_heads = num_heads')
  if m.position == 'rope' and derived.head_dim(m) % 2:
    refuse_key('model.head_dim', derived.head_dim(m),
          'rope rotates pairs of features, so the head size must be even')
  if m.attention == 'cudnn' and m.dtype != 'bfloat16':
    refuse_key('model.attention', m.attention,
          f'cudnn attention needs config.model.dtype=\'bfloat16\' (it is {m.dtype!r}); '
          "use config.model.attention='auto' or 'xla' for float32")


def check_length(config, max_len_key: str = 'model.max_len') -> None:
  """data.seq_len within the positions the model supports."""
  max_len = config.model.max_len
  if config.data.seq_len > max_len:
    refuse_key('data.seq_len', config.data.seq_len,
          f'longer than config.{max_len_key}={max_len}, the positions the model supports; '
          f'raise config.{max_len_key} to at least {config.data.seq_len} or lower data.seq_len')


def check_tensor_split(m, tp: int) -> None:
  """Heads, kv heads, MLP width and the padded vocabulary split over `tensor`."""
  if tp <= 1:
    return
  split = f'tensor parallelism splits it over the config.mesh.tensor={tp} devices'
  if m.num_heads % tp:
    refuse_key('model.num_heads', m.num_heads,
          f'not divisible by config.mesh.tensor={tp}: {split} (each device gets whole '
          f'attention heads); use a multiple of {tp} or a smaller mesh.tensor')
  kv = derived.num_kv_heads(m)
  if kv % tp:
    refuse_key('model.num_kv_heads', m.num_kv_heads,
          f'{kv} kv heads are not divisible by config.mesh.tensor={tp}: {split} (each device '
          f'gets whole kv heads); use a multiple of {tp} kv heads or a smaller mesh.tensor')
  mlp = derived.mlp_dim(m)
  if mlp % tp:
    refuse_key('model.mlp_dim', m.mlp_dim,
          f'the MLP width {mlp} is not divisible by config.mesh.tensor={tp}: {split}; '
          f'use an mlp_dim that is a multiple of {tp}')
  check_vocab_split(m, tp)


def check_vocab_split(m, tp: int) -> None:
  """The padded vocabulary (embedding rows, logits) splits over `tensor`."""
  if tp <= 1:
    return
  split = f'tensor parallelism splits it over the config.mesh.tensor={tp} devices'
  if m.vocab_size:
    vocab = derived.padded_vocab_size(m.vocab_size, m.vocab_multiple)
    if vocab % tp:
      refuse_key('model.vocab_multiple', m.vocab_multiple,
            f'the padded vocabulary {vocab} (config.model.vocab_size={m.vocab_size} rounded up '
            f'to a multiple of vocab_multiple) is not divisible by config.mesh.tensor={tp}: '
            f'{split}; use a vocab_multiple that is a multiple of {tp} (e.g. 64)')
  elif m.vocab_multiple % tp:
    refuse_key('model.vocab_multiple', m.vocab_multiple,
          f'not a multiple of config.mesh.tensor={tp}, so the padded vocabulary (the '
          f'tokenizer\'s size rounded up to vocab_multiple) may not split over the tensor '
          f'devices; use a multiple of {tp} (e.g. 64)')


def check_fsdp_split(m, fsdp: int, key: str = 'model.d_model') -> None:
  """FSDP splits the embed dimension of the parameters."""
  if fsdp > 1 and m.d_model % fsdp:
    refuse_key(key, m.d_model,
          f'not divisible by config.mesh.fsdp={fsdp}: fsdp shards the embed dimension '
          'of the parameters over the fsdp devices')


def check_transformer(config, mesh_shape: dict[str, int]) -> None:
  """All of the above for a Transformer family."""
  m = config.model
  check_heads(m)
  check_length(config)
  check_tensor_split(m, mesh_shape['tensor'])
  check_fsdp_split(m, mesh_shape['fsdp'])
