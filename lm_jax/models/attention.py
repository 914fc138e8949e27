"""Multi-head / grouped-query attention (self or cross) taking its mask as data.

The implementation is chosen per call from `cfg.attention` and what the mask
and bias need (`choose_implementation`): on CPU the exact blockwise causal
kernel below; on GPU cuDNN flash attention (bf16/fp16), which takes the causal
flag and any other mask part as a dense mask; elsewhere XLA's dense attention,
through `jax.nn.dot_product_attention`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.kv_cache import cached_keys_values
from lm_jax.models.layers import EinsumDense
from lm_jax.models.masks import AttentionMask
from lm_jax.models.positions import apply_rope

# Query rows per block of blockwise_causal_attention (the CPU default). Measured
# on a 2-core AVX-512 CPU at L = 256: 64 beats 128 and 32 (smaller matmuls
# lose more efficiency than the skipped upper triangle gains).
CAUSAL_BLOCK = 64
IMPLEMENTATIONS = ('auto', 'xla', 'cudnn', 'blockwise')


def choose_implementation(name: str, mask: AttentionMask, has_bias: bool,
                          dtype) -> str:
  """'blockwise' | 'cudnn' | 'xla' for config value `name` and this call's mask/bias.

  `auto`: cuDNN on GPU for bf16/fp16 (it takes every mask here, as a dense
  mask beside `is_causal`), the blockwise kernel on CPU when the mask is
  causal without a prefix and there is no bias, XLA otherwise. An explicit
  'blockwise' that cannot express the call falls back to XLA (same math).
  """
  blockwise_ok = mask.causal and mask.is_plain_causal_or_none and not has_bias
  if name == 'auto':
    backend = jax.default_backend()
    if backend == 'gpu':
      return 'cudnn' if jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) else 'xla'
    return 'blockwise' if backend == 'cpu' and blockwise_ok else 'xla'
  if name == 'blockwise' and not blockwise_ok:
    return 'xla'
  return name


def blockwise_causal_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, mask: AttentionMask,
                               scale: float, block: int = CAUSAL_BLOCK):
  """Exact causal softmax attention, one block of query rows at a time.

  Query block [a, b) only meets keys [0, b): the upper triangle of the T x T
  scores is never computed (with n blocks, (n + 1) / 2n of the full work).
  Same math as jax.nn.dot_product_attention(..., is_causal=True): fp32 scores
  and softmax, GQA by grouping query heads; the mask's segment and padding
  parts are built per block from their ids. Each block's G query heads of a
  key/value head are rows of one matrix (M = Q * G rows, row m = query m // G),
  so both matmuls are plain [B, K] batches of 2-D matmuls: XLA:CPU runs a dot
  with two free dimensions (g, q) through extra copies, ~1.5x slower forward and
  backward (experiments/bench_attention_cpu.py, docs/performance.md).
  """
  B, T, N, H = q_BxTxNxH.shape
  K = k_BxSxKxH.shape[2]
  G = N // K
  q_BxTxKxGxH = (q_BxTxNxH * jnp.asarray(scale, q_BxTxNxH.dtype)).reshape(B, T, K, G, H)
  big_negative = -0.7 * float(jnp.finfo(jnp.float32).max)
  outs = []
  for start in range(0, T, block):
    end = min(start + block, T)
    Q = end - start
    q_BxKxMxH = q_BxTxKxGxH[:, start:end].transpose(0, 2, 1, 3, 4).reshape(B, K, Q * G, H)
    s_BxKxMxS = jnp.einsum('bkmh,bskh->bkms', q_BxKxMxH, k_BxSxKxH[:, :end],
                           preferred_element_type=jnp.float32)
    allowed_QxS = jnp.arange(start, end)[:, None] >= jnp.arange(end)[None, :]
    allowed = jnp.repeat(allowed_QxS, G, axis=0)
    extras_Bx1xQxS = mask.extras_block(start, end, end)
    if extras_Bx1xQxS is not None:  # its query axis is Q, or 1 (padding only)
      rows = G if extras_Bx1xQxS.shape[2] > 1 else 1
      allowed = allowed & jnp.repeat(extras_Bx1xQxS, rows, axis=2)
    s_BxKxMxS = jnp.where(allowed, s_BxKxMxS, big_negative)
    p_BxKxMxS = jax.nn.softmax(s_BxKxMxS, axis=-1).astype(v_BxSxKxH.dtype)
    out_BxKxMxH = jnp.einsum('bkms,bskh->bkmh', p_BxKxMxS, v_BxSxKxH[:, :end])
    outs.append(out_BxKxMxH.reshape(B, K, Q, G, H).transpose(0, 2, 1, 3, 4))
  return jnp.concatenate(outs, axis=1).reshape(B, T, N, H)


def attend(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, mask: AttentionMask, *, implementation: str,
           bias_BxNxTxS=None, scale: float | None = None):
  """softmax(scale * q k^T + bias, masked) v with the implementation named by the config."""
  H = q_BxTxNxH.shape[-1]
  scale = H ** -0.5 if scale is None else scale
  impl = choose_implementation(implementation, mask, bias_BxNxTxS is not None,
                               q_BxTxNxH.dtype)
  if impl == 'blockwise':
    return blockwise_causal_attention(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, mask, scale)
  T, S = q_BxTxNxH.shape[1], k_BxSxKxH.shape[1]
  if impl == 'cudnn' and mask.prefix_len_B is None:
    # cuDNN skips the masked upper triangle itself; the rest goes in densely.
    dense, is_causal = mask.dense_extras(T, S), mask.causal
  else:
    dense, is_causal = mask.dense(T, S), False
  return jax.nn.dot_product_attention(
      q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, bias=bias_BxNxTxS, mask=dense, scale=scale,
      is_causal=is_causal, implementation=impl)


class Attention(nn.Module):
  """Attention of x's queries over kv's keys/values (kv = x: self-attention).

  `cfg` needs d_model, num_heads, num_kv_heads, head_dim, use_bias, init_std,
  dtype/param_dtype (jnp_dtype, jnp_param_dtype), dropout, attention,
  position and rope_theta. `scale` None means 1/sqrt(head_dim) (T5: 1.0).
  A cfg with `decode=True` keeps self-attention keys/values in the `cache`
  collection (lm_jax/models/kv_cache.py); the mask then covers the cache slots.
  Its cross-attention stores the keys/values of `kv` as `cross_key`/`cross_value`
  there, and a call with `cached_cross_kv` (no kv) attends over the stored ones.
  """
  cfg: object
  out_std: float
  scale: float | None = None

  @nn.compact
  def __call__(self, x_BxTxD, mask: AttentionMask, positions_BxT=None, kv_BxSxD=None,
               kv_positions_BxS=None, bias_BxNxTxS=None, deterministic: bool = True,
               cached_cross_kv: bool = False):
    cfg = self.cfg
    self_attention = kv_BxSxD is None and not cached_cross_kv
    kv_BxSxD = x_BxTxD if self_attention else kv_BxSxD
    bias_ndim = 2 if cfg.use_bias else 0

    def project(x, heads, axes, name):
      return EinsumDense('bld,dnh->blnh', (cfg.d_model, heads, cfg.head_dim),
                         ('embed',) + axes, bias_ndim, cfg.init_std, cfg, name=name)(x)

    q_BxTxNxH = project(x_BxTxD, cfg.num_heads, ('heads', 'head_dim'), 'query')
    if cached_cross_kv:
      k_BxSxKxH = self.get_variable('cache', 'cross_key')
      v_BxSxKxH = self.get_variable('cache', 'cross_value')
    else:
      k_BxSxKxH = project(kv_BxSxD, cfg.num_kv_heads, ('kv_heads', 'head_dim'), 'key')
      v_BxSxKxH = project(kv_BxSxD, cfg.num_kv_heads, ('kv_heads', 'head_dim'), 'value')
    if cfg.position == 'rope' and self_attention:
      kv_positions_BxS = positions_BxT if kv_positions_BxS is None else kv_positions_BxS
      q_BxTxNxH = apply_rope(q_BxTxNxH, positions_BxT, cfg.rope_theta)
      k_BxSxKxH = apply_rope(k_BxSxKxH, kv_positions_BxS, cfg.rope_theta)
    heads = ('batch', 'length', 'act_heads', None)
    # Under sequence parallelism queries stay split along length while keys
    # and values are gathered whole (`act_kv_length` is never split).
    kv_heads = ('batch', 'act_kv_length', 'act_heads', None)
    q_BxTxNxH = nn.with_logical_constraint(q_BxTxNxH, heads)
    k_BxSxKxH = nn.with_logical_constraint(k_BxSxKxH, kv_heads)
    v_BxSxKxH = nn.with_logical_constraint(v_BxSxKxH, kv_heads)
    if getattr(cfg, 'decode', False) and self_attention:
      k_BxSxKxH, v_BxSxKxH = cached_keys_values(self, k_BxSxKxH, v_BxSxKxH)
    elif getattr(cfg, 'decode', False) and not cached_cross_kv:
      self.put_variable('cache', 'cross_key', k_BxSxKxH)
      self.put_variable('cache', 'cross_value', v_BxSxKxH)

    out_BxTxNxH = attend(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, mask,
                         implementation=cfg.attention, bias_BxNxTxS=bias_BxNxTxS,
                         scale=self.scale)
    out_BxTxNxH = nn.with_logical_constraint(out_BxTxNxH, heads)
    out_BxTxD = EinsumDense(
        'blnh,nhd->bld', (cfg.num_heads, cfg.head_dim, cfg.d_model),
        ('heads', 'head_dim', 'embed'), bias_ndim // 2, self.out_std, cfg,
        name='out')(out_BxTxNxH)
    return nn.Dropout(cfg.dropout)(out_BxTxD, deterministic=deterministic)
