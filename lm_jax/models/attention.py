"""Multi-head / grouped-query self-attention over jax.nn.dot_product_attention."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.config import ModelConfig
from lm_jax.models.layers import EinsumDense
from lm_jax.models.positions import apply_rope


def attention_mask(segment_ids_BxL: jnp.ndarray | None,
                   padding_mask_BxL: jnp.ndarray | None) -> jnp.ndarray | None:
  """[B, 1, L, L] boolean mask: same packed segment and key not padding."""
  mask = None
  if segment_ids_BxL is not None:
    mask = segment_ids_BxL[:, None, :, None] == segment_ids_BxL[:, None, None, :]
  if padding_mask_BxL is not None:
    keys = padding_mask_BxL[:, None, None, :].astype(bool)
    mask = keys if mask is None else mask & keys
  return mask


# Query rows per block of blockwise_causal_attention (the CPU default). Measured
# on a 2-core AVX-512 CPU at L = 256: 64 beats 128 and 32 (smaller matmuls
# lose more efficiency than the skipped upper triangle gains).
CAUSAL_BLOCK = 64


def _implementation(name: str) -> str | None:
  """`auto`: cuDNN flash attention on GPU (when it applies), blockwise on CPU, else XLA."""
  if name == 'auto':
    return {'gpu': 'cudnn', 'cpu': 'blockwise'}.get(jax.default_backend(), 'xla')
  return name


def blockwise_causal_attention(q_BxLxNxH, k_BxLxKxH, v_BxLxKxH, mask_Bx1xLxL,
                               block: int = CAUSAL_BLOCK):
  """Exact causal softmax attention, one block of query rows at a time.

  Query block [a, b) only meets keys [0, b): the upper triangle of the L x L
  scores is never computed (with n blocks, (n + 1) / 2n of the full work).
  Same math as jax.nn.dot_product_attention(..., is_causal=True): fp32 scores
  and softmax, GQA by grouping query heads, `mask` ([B, 1, L, L] bool) and the
  causal mask both applied by index. Heads are moved in front of the length
  axis once, so every block is a plain batched matmul over contiguous rows
  (2x faster on CPU than slicing [B, L, N, H] per block).
  """
  B, L, N, H = q_BxLxNxH.shape
  K = k_BxLxKxH.shape[2]
  G = N // K
  scale = jnp.asarray(1.0 / H ** 0.5, q_BxLxNxH.dtype)
  q_BxKxGxLxH = (q_BxLxNxH * scale).reshape(B, L, K, G, H).transpose(0, 2, 3, 1, 4)
  k_BxKxLxH = k_BxLxKxH.transpose(0, 2, 1, 3)
  v_BxKxLxH = v_BxLxKxH.transpose(0, 2, 1, 3)
  big_negative = -0.7 * float(jnp.finfo(jnp.float32).max)
  outs = []
  for start in range(0, L, block):
    end = min(start + block, L)
    s_BxKxGxQxS = jnp.einsum('bkgqh,bksh->bkgqs', q_BxKxGxLxH[:, :, :, start:end],
                             k_BxKxLxH[:, :, :end],
                             preferred_element_type=jnp.float32)
    allowed = jnp.arange(start, end)[:, None] >= jnp.arange(end)[None, :]
    if mask_Bx1xLxL is not None:
      allowed = allowed & mask_Bx1xLxL[:, :, None, start:end, :end]
    s_BxKxGxQxS = jnp.where(allowed, s_BxKxGxQxS, big_negative)
    p_BxKxGxQxS = jax.nn.softmax(s_BxKxGxQxS, axis=-1).astype(v_BxLxKxH.dtype)
    outs.append(jnp.einsum('bkgqs,bksh->bkgqh', p_BxKxGxQxS, v_BxKxLxH[:, :, :end]))
  out_BxKxGxLxH = jnp.concatenate(outs, axis=3)
  return out_BxKxGxLxH.transpose(0, 3, 1, 2, 4).reshape(B, L, N, H)


class SelfAttention(nn.Module):
  """Self-attention with optional RoPE, GQA (num_kv_heads < num_heads) and masks."""
  cfg: ModelConfig
  out_std: float

  @nn.compact
  def __call__(self, x_BxLxD, positions_BxL, mask_Bx1xLxL, deterministic: bool):
    cfg = self.cfg

    bias_ndim = 2 if cfg.use_bias else 0

    def project(heads, axes, name):
      return EinsumDense('bld,dnh->blnh', (cfg.d_model, heads, cfg.head_dim),
                         ('embed',) + axes, bias_ndim, cfg.init_std, cfg,
                         name=name)(x_BxLxD)

    q_BxLxNxH = project(cfg.num_heads, ('heads', 'head_dim'), 'query')
    k_BxLxKxH = project(cfg.num_kv_heads, ('kv_heads', 'head_dim'), 'key')
    v_BxLxKxH = project(cfg.num_kv_heads, ('kv_heads', 'head_dim'), 'value')
    if cfg.position == 'rope':
      q_BxLxNxH = apply_rope(q_BxLxNxH, positions_BxL, cfg.rope_theta)
      k_BxLxKxH = apply_rope(k_BxLxKxH, positions_BxL, cfg.rope_theta)
    heads = ('batch', 'length', 'act_heads', None)
    # Under sequence parallelism queries stay split along length while keys
    # and values are gathered whole (`act_kv_length` is never split).
    kv_heads = ('batch', 'act_kv_length', 'act_heads', None)
    q_BxLxNxH = nn.with_logical_constraint(q_BxLxNxH, heads)
    k_BxLxKxH = nn.with_logical_constraint(k_BxLxKxH, kv_heads)
    v_BxLxKxH = nn.with_logical_constraint(v_BxLxKxH, kv_heads)

    impl = _implementation(cfg.attention)
    if impl == 'cudnn' and (mask_Bx1xLxL is not None
                            or cfg.jnp_dtype == jnp.float32):
      impl = None  # cuDNN flash wants bf16/fp16 and no dense mask: let JAX pick.
    if impl == 'blockwise' and not cfg.causal:
      impl = 'xla'  # nothing to skip without the causal mask
    if impl == 'blockwise':
      out_BxLxNxH = blockwise_causal_attention(q_BxLxNxH, k_BxLxKxH, v_BxLxKxH,
                                               mask_Bx1xLxL)
    else:
      out_BxLxNxH = jax.nn.dot_product_attention(
          q_BxLxNxH, k_BxLxKxH, v_BxLxKxH, mask=mask_Bx1xLxL,
          is_causal=cfg.causal, implementation=impl)
    out_BxLxNxH = nn.with_logical_constraint(out_BxLxNxH, heads)
    out_BxLxD = EinsumDense(
        'blnh,nhd->bld', (cfg.num_heads, cfg.head_dim, cfg.d_model),
        ('heads', 'head_dim', 'embed'), bias_ndim // 2, self.out_std, cfg,
        name='out')(out_BxLxNxH)
    return nn.Dropout(cfg.dropout)(out_BxLxD, deterministic=deterministic)
