"""A float64 NumPy forward pass of lm_jax's decoder, written from its param
tree and the published architectures (GPT-2; Llama: RMSNorm, rotate-half
RoPE, SwiGLU, grouped-query attention). Shared by the model and
gradient-accumulation tests as an independent reference."""

import jax
import numpy as np


def _np_norm(x, p, kind, eps):
  p = next(iter(p.values()))  # Norm wraps one flax LayerNorm_0 / RMSNorm_0
  if kind == 'rmsnorm':
    return x / np.sqrt(np.mean(x ** 2, -1, keepdims=True) + eps) * p['scale']
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  y = (x - mu) / np.sqrt(var + eps) * p['scale']
  return y + p['bias'] if 'bias' in p else y


def np_rope(x_BxLxNxH, positions_BxL, theta):
  """HF Llama's rotate-half: pair (i, i + H/2) is one complex number."""
  half = x_BxLxNxH.shape[-1] // 2
  freqs = theta ** (-np.arange(half, dtype=np.float64) * 2 / x_BxLxNxH.shape[-1])
  angles = positions_BxL[..., None].astype(np.float64) * freqs
  z = x_BxLxNxH[..., :half] + 1j * x_BxLxNxH[..., half:]
  z = z * np.exp(1j * angles)[:, :, None, :]
  return np.concatenate([z.real, z.imag], -1)


def _np_gelu_tanh(x):
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _np_softmax(s, axis=-1):
  s = s - s.max(axis, keepdims=True)
  e = np.exp(s)
  return e / e.sum(axis, keepdims=True)


def np_attention(q_BxLxNxH, k_BxLxKxH, v_BxLxKxH, allowed_BxLxL=None,
                 causal=True):
  """Float64 softmax attention; query head n reads kv head n // (N // K) (GQA).

  `allowed_BxLxL[b, i, j]`: query i may see key j (on top of the causal mask).
  Returns (out [B, L, N, H], has_key [B, L]); a query row with no key allowed
  is NaN in `out` (the reference has no opinion there; has_key says which).
  """
  q, k, v = (np.asarray(x, np.float64) for x in (q_BxLxNxH, k_BxLxKxH, v_BxLxKxH))
  B, L, N, H = q.shape
  rep = N // k.shape[2]
  k, v = np.repeat(k, rep, axis=2), np.repeat(v, rep, axis=2)
  allowed = np.ones((B, L, L), bool)
  if causal:
    allowed &= np.tril(np.ones((L, L), bool))
  if allowed_BxLxL is not None:
    allowed &= allowed_BxLxL
  s = np.einsum('blnh,bmnh->bnlm', q, k) / np.sqrt(H)
  s = np.where(allowed[:, None], s, -np.inf)
  with np.errstate(invalid='ignore'):  # rows with no key: NaN on purpose
    p_BxNxLxM = _np_softmax(s)
    # Sum over the allowed keys only (a NaN value of a key the query may not
    # see, e.g. a keyless row of the layer below, must not reach it).
    terms = p_BxNxLxM[..., None] * v.transpose(0, 2, 1, 3)[:, :, None]
    out = np.where(allowed[:, None, :, :, None], terms, 0.0).sum(3)
  has_key = allowed.any(-1)
  out = np.where(has_key[:, None, :, None], out, np.nan)
  return out.transpose(0, 2, 1, 3), has_key


def np_allowed(segment_ids_BxL=None, padding_mask_BxL=None):
  """[B, L, L] bool from packed segment ids (same segment) and a key padding
  mask (1 = a real token), or None when both are None."""
  allowed = None
  if segment_ids_BxL is not None:
    allowed = segment_ids_BxL[:, :, None] == segment_ids_BxL[:, None, :]
  if padding_mask_BxL is not None:
    keys = np.broadcast_to(np.asarray(padding_mask_BxL, bool)[:, None, :],
                           padding_mask_BxL.shape + padding_mask_BxL.shape[-1:])
    allowed = keys if allowed is None else allowed & keys
  return allowed


def _np_dense(x, p, eq):
  y = np.einsum(eq, x, p['kernel'])
  return y + p['bias'] if 'bias' in p else y


def np_decoder(params, cfg, tokens_BxL, positions_BxL=None,
               segment_ids_BxL=None, padding_mask_BxL=None):
  """Float64 forward pass of the decoder from its param tree; [B, L, vocab_size]."""
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
  B, L = tokens_BxL.shape
  if positions_BxL is None:
    positions_BxL = np.broadcast_to(np.arange(L), (B, L))
  x = p['embed']['embedding'][tokens_BxL]
  if cfg.position == 'learned':
    x = x + p['pos_embed']['embedding'][positions_BxL]
  allowed = np_allowed(segment_ids_BxL, padding_mask_BxL)
  for i in range(cfg.num_layers):
    blk = p[f'layer_{i}']
    h = _np_norm(x, blk['attn_norm'], cfg.norm, cfg.norm_eps)
    q = _np_dense(h, blk['attn']['query'], 'bld,dnh->blnh')
    k = _np_dense(h, blk['attn']['key'], 'bld,dnh->blnh')
    v = _np_dense(h, blk['attn']['value'], 'bld,dnh->blnh')
    if cfg.position == 'rope':
      q = np_rope(q, positions_BxL, cfg.rope_theta)
      k = np_rope(k, positions_BxL, cfg.rope_theta)
    o, _ = np_attention(q, k, v, allowed)
    x = x + _np_dense(o, blk['attn']['out'], 'blnh,nhd->bld')
    h = _np_norm(x, blk['mlp_norm'], cfg.norm, cfg.norm_eps)
    mlp = blk['mlp']
    if cfg.mlp == 'swiglu':
      g = _np_dense(h, mlp['gate'], 'bld,df->blf')
      f = g / (1 + np.exp(-g)) * _np_dense(h, mlp['up'], 'bld,df->blf')
    else:
      f = _np_gelu_tanh(_np_dense(h, mlp['up'], 'bld,df->blf'))
    x = x + _np_dense(f, mlp['down'], 'blf,fd->bld')
  x = _np_norm(x, p['final_norm'], cfg.norm, cfg.norm_eps)
  if cfg.tie_embeddings:
    logits = x @ p['embed']['embedding'].T
  else:
    logits = x @ p['lm_head']['kernel']
  return logits[..., :cfg.vocab_size]
