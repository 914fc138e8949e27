"""Gated CNN LM: embedding -> residual blocks of causal convolution + GLU -> LM head.

A block (Dauphin et al. 2017, eq. 1, with a residual connection):
  h = norm(x) (pre_norm) or x;  [A, B] = conv_k(h) + b;  x + W_out (A * sigmoid(B))
where conv_k is a causal 1-D convolution of k taps (left padding k - 1, so
position t reads t-k+1..t) from d_model to 2 * channels features, and W_out
(1x1) maps channels back to d_model when they differ. Packed documents: taps
that reach into an earlier document read zeros, as the left padding does.
The paper's weight normalisation is replaced by the pre-norm (or nothing).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.layers import Norm, dense_init, matmul_2d, zeros_init
from lm_jax.models.cnn.config import CNNConfig
from lm_jax.models.lm_head import lm_logits, token_embedding

ACTIVATION_AXES = ('batch', 'length', 'act_embed')


def causal_taps(x_BxLxD, kernel_size: int, segment_ids_BxL=None):
  """[B, L, K, D]: tap j of position t is x[t - (K - 1) + j] (zeros before 0 / the document)."""
  L, K = x_BxLxD.shape[1], kernel_size
  padded_BxPxD = jnp.pad(x_BxLxD, ((0, 0), (K - 1, 0), (0, 0)))
  taps_BxLxKxD = jnp.stack([padded_BxPxD[:, j:j + L] for j in range(K)], axis=2)
  if segment_ids_BxL is not None:
    seg_BxP = jnp.pad(segment_ids_BxL, ((0, 0), (K - 1, 0)), constant_values=-1)
    seg_BxLxK = jnp.stack([seg_BxP[:, j:j + L] for j in range(K)], axis=2)
    same_BxLxK = seg_BxLxK == segment_ids_BxL[:, :, None]
    taps_BxLxKxD = jnp.where(same_BxLxK[..., None], taps_BxLxKxD, 0)
  return taps_BxLxKxD


class GatedConvBlock(nn.Module):
  """x + W_out GLU(causal_conv(norm(x)))."""
  cfg: CNNConfig
  deterministic: bool

  @nn.compact
  def __call__(self, x_BxLxD, segment_ids_BxL=None):
    cfg = self.cfg
    K, D, C = cfg.kernel_size, cfg.d_model, cfg.channels
    x_BxLxD = nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)
    h_BxLxD = Norm(cfg, name='norm')(x_BxLxD) if cfg.pre_norm else x_BxLxD
    kernel = self.param('kernel', dense_init((K * D) ** -0.5, (None, 'embed', None, 'mlp')),
                        (K, D, 2, C), cfg.jnp_param_dtype)
    bias = self.param('bias', zeros_init((None, 'mlp')), (2, C), cfg.jnp_param_dtype)
    taps_BxLxKxD = causal_taps(h_BxLxD.astype(cfg.jnp_dtype), K, segment_ids_BxL)
    ab_BxLx2xC = matmul_2d('blkd,kdgc->blgc', taps_BxLxKxD, kernel.astype(cfg.jnp_dtype))
    ab_BxLx2xC = ab_BxLx2xC + bias.astype(cfg.jnp_dtype)
    g_BxLxC = ab_BxLx2xC[:, :, 0] * jax.nn.sigmoid(ab_BxLx2xC[:, :, 1])
    g_BxLxC = nn.with_logical_constraint(g_BxLxC, ('batch', 'length', 'act_mlp'))
    if cfg.projects:
      g_BxLxC = nn.Dense(D, use_bias=False, dtype=cfg.jnp_dtype, param_dtype=cfg.jnp_param_dtype,
                         kernel_init=dense_init(C ** -0.5, ('mlp', 'embed')),
                         name='out_proj')(g_BxLxC)
    g_BxLxC = nn.Dropout(cfg.dropout)(g_BxLxC, deterministic=self.deterministic)
    return nn.with_logical_constraint(x_BxLxD + g_BxLxC, ACTIVATION_AXES)


class GatedCNN(nn.Module):
  """tokens [B, L] -> logits [B, L, V] (float32); position t sees tokens <= t."""
  cfg: CNNConfig

  @nn.compact
  def __call__(self, inputs_BxL, segment_ids_BxL=None, deterministic: bool = True):
    cfg = self.cfg
    embed = token_embedding(cfg)
    x_BxLxD = nn.Dropout(cfg.dropout)(embed(inputs_BxL), deterministic=deterministic)
    for i in range(cfg.num_layers):
      x_BxLxD = GatedConvBlock(cfg, deterministic, name=f'block_{i}')(x_BxLxD, segment_ids_BxL)
    if cfg.pre_norm:
      x_BxLxD = Norm(cfg, name='final_norm')(x_BxLxD)
    return lm_logits(x_BxLxD, embed, cfg)
