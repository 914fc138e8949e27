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


def _implementation(name: str) -> str | None:
  """`auto` lets JAX pick (cuDNN flash attention on GPU when it applies)."""
  if name == 'auto':
    return 'cudnn' if jax.default_backend() == 'gpu' else 'xla'
  return name


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
    out_BxLxNxH = jax.nn.dot_product_attention(
        q_BxLxNxH, k_BxLxKxH, v_BxLxKxH, mask=mask_Bx1xLxL,
        is_causal=cfg.causal, implementation=impl)
    out_BxLxNxH = nn.with_logical_constraint(out_BxLxNxH, heads)
    out_BxLxD = EinsumDense(
        'blnh,nhd->bld', (cfg.num_heads, cfg.head_dim, cfg.d_model),
        ('heads', 'head_dim', 'embed'), bias_ndim // 2, self.out_std, cfg,
        name='out')(out_BxLxNxH)
    return nn.Dropout(cfg.dropout)(out_BxLxD, deterministic=deterministic)
