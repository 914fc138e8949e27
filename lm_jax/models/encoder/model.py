"""Encoder-only Transformer (BERT): bidirectional attention, MLM head, pooler and NSP head.

Embeddings: word + learned position + token type (segment A / B), then
LayerNorm and dropout. Blocks are post-LN as in BERT (x = LN(x + f(x))) or
pre-LN (x + f(LN(x)), with a final LN) by `norm_position`. The MLM head is
BERT's: dense + GELU + LayerNorm, then the word embedding transposed (tied)
plus a per-token bias. The pooler is tanh(dense) of the [CLS] (first) token,
and the NSP head a 2-way classifier on it (0: B follows A, 1: B is random).
GELU is the exact (erf) one, as BERT's.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.attention import Attention
from lm_jax.models.decoder.model import REMAT_POLICIES
from lm_jax.models.encoder.config import EncoderConfig
from lm_jax.models.layers import EinsumDense, Norm, as_token_rows, dense_init, zeros_init
from lm_jax.models.masks import AttentionMask, bidirectional_mask

ACTIVATION_AXES = ('batch', 'length', 'act_embed')


class EncoderMlp(nn.Module):
  """Dense(mlp_dim) + exact GELU + Dense(d_model); hidden dims split over `mlp`."""
  cfg: EncoderConfig

  @nn.compact
  def __call__(self, x_BxLxD, deterministic: bool):
    cfg = self.cfg
    bias = int(cfg.use_bias)
    h_BxLxF = EinsumDense('bld,df->blf', (cfg.d_model, cfg.mlp_dim), ('embed', 'mlp'), bias,
                          cfg.init_std, cfg, name='up')(x_BxLxD)
    h_BxLxF = jax.nn.gelu(h_BxLxF, approximate=False)
    h_BxLxF = nn.with_logical_constraint(h_BxLxF, ('batch', 'length', 'act_mlp'))
    out_BxLxD = EinsumDense('blf,fd->bld', (cfg.mlp_dim, cfg.d_model), ('mlp', 'embed'), bias,
                            cfg.init_std, cfg, name='down')(h_BxLxF)
    return nn.Dropout(cfg.dropout)(out_BxLxD, deterministic=deterministic)


class EncoderBlock(nn.Module):
  """Self-attention and MLP sublayers, each post-LN (BERT) or pre-LN."""
  cfg: EncoderConfig
  deterministic: bool

  @nn.compact
  def __call__(self, x_BxLxD, mask: AttentionMask):
    cfg = self.cfg
    x_BxLxD = nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)
    attn = Attention(cfg, cfg.init_std, name='attn')
    mlp = EncoderMlp(cfg, name='mlp')
    attn_norm, mlp_norm = Norm(cfg, name='attn_norm'), Norm(cfg, name='mlp_norm')
    if cfg.norm_position == 'pre':
      x_BxLxD = x_BxLxD + attn(attn_norm(x_BxLxD), mask, deterministic=self.deterministic)
      x_BxLxD = x_BxLxD + mlp(mlp_norm(x_BxLxD), self.deterministic)
    else:
      x_BxLxD = attn_norm(x_BxLxD + attn(x_BxLxD, mask, deterministic=self.deterministic))
      x_BxLxD = mlp_norm(x_BxLxD + mlp(x_BxLxD, self.deterministic))
    return nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)


class _ScannedBlock(EncoderBlock):
  """The (carry, x) -> (carry, y) signature nn.scan wants."""

  def __call__(self, x_BxLxD, mask):
    return super().__call__(x_BxLxD, mask), None


def _block_class(cfg: EncoderConfig):
  block = _ScannedBlock if cfg.scan_layers else EncoderBlock
  if cfg.remat != 'none':
    block = nn.remat(block, policy=REMAT_POLICIES[cfg.remat], prevent_cse=not cfg.scan_layers)
  return block


def _embed(num, cfg: EncoderConfig, axes, name):
  return nn.Embed(num, cfg.d_model, dtype=cfg.jnp_dtype, param_dtype=cfg.jnp_param_dtype,
                  embedding_init=nn.with_logical_partitioning(
                      nn.initializers.normal(cfg.init_std), axes), name=name)


def _dense(features, axes, cfg: EncoderConfig, name):
  return nn.Dense(features, dtype=cfg.jnp_dtype, param_dtype=cfg.jnp_param_dtype,
                  kernel_init=dense_init(cfg.init_std, axes), bias_init=zeros_init(axes[1:]),
                  name=name)


class _VocabBias(nn.Module):
  """+ a bias per vocabulary row (the MLM decoder's; its weight is the tied embedding)."""
  cfg: EncoderConfig

  @nn.compact
  def __call__(self, logits_TxV):
    cfg = self.cfg
    bias_V = self.param('bias', zeros_init(('vocab',)), (cfg.padded_vocab_size,),
                        cfg.jnp_param_dtype)
    return logits_TxV + bias_V.astype(cfg.jnp_dtype)


class Encoder(nn.Module):
  """tokens [B, L] -> {'logits': MLM logits [B, L, V] fp32, 'nsp_logits': [B, 2] fp32}.

  token_types: segment A (0) / B (1) per token; padding_mask: False for
  padding keys; segment_ids: packed documents attend only within themselves.
  """
  cfg: EncoderConfig

  @nn.compact
  def __call__(self, inputs_BxL, token_types_BxL=None, positions_BxL=None,
               segment_ids_BxL=None, padding_mask_BxL=None, deterministic: bool = True):
    cfg = self.cfg
    if positions_BxL is None:
      positions_BxL = jnp.broadcast_to(jnp.arange(inputs_BxL.shape[1]), inputs_BxL.shape)
    if token_types_BxL is None:
      token_types_BxL = jnp.zeros_like(inputs_BxL)
    embed = _embed(cfg.padded_vocab_size, cfg, ('vocab', 'embed'), 'embed')
    x_BxLxD = (embed(inputs_BxL)
               + _embed(cfg.max_len, cfg, ('positions', 'embed'), 'pos_embed')(positions_BxL)
               + _embed(cfg.type_vocab_size, cfg, (None, 'embed'), 'type_embed')(
                   token_types_BxL))
    x_BxLxD = Norm(cfg, name='embed_norm')(x_BxLxD)
    x_BxLxD = nn.Dropout(cfg.dropout)(x_BxLxD, deterministic=deterministic)
    mask = bidirectional_mask(padding_mask_BxL, segment_ids_BxL)

    block = _block_class(cfg)
    if cfg.scan_layers:
      x_BxLxD, _ = nn.scan(
          block, variable_axes={'params': 0}, split_rngs={'params': True, 'dropout': True},
          in_axes=(nn.broadcast,), length=cfg.num_layers,
          metadata_params={nn.PARTITION_NAME: 'layers'},
      )(cfg, deterministic, name='layers')(x_BxLxD, mask)
    else:
      for i in range(cfg.num_layers):
        x_BxLxD = block(cfg, deterministic, name=f'layer_{i}')(x_BxLxD, mask)
    if cfg.norm_position == 'pre':
      x_BxLxD = Norm(cfg, name='final_norm')(x_BxLxD)

    outputs = {'logits': self._mlm_logits(embed, x_BxLxD)}
    if cfg.nsp_head:
      pooled_BxD = jnp.tanh(_dense(cfg.d_model, ('embed', None), cfg, 'pooler')(
          x_BxLxD[:, 0]))
      nsp_Bx2 = _dense(2, ('embed', None), cfg, 'nsp')(pooled_BxD)
      outputs['nsp_logits'] = nsp_Bx2.astype(jnp.float32)
    return outputs

  def _mlm_logits(self, embed: nn.Embed, x_BxLxD):
    """BERT's MLM head on [B * L, D] rows: transform, LN, tied decoder + bias."""
    cfg = self.cfg
    x_TxD = as_token_rows(x_BxLxD.reshape(-1, cfg.d_model))
    h_TxD = jax.nn.gelu(_dense(cfg.d_model, ('embed', None), cfg, 'mlm_dense')(x_TxD),
                        approximate=False)
    h_TxD = Norm(cfg, name='mlm_norm')(h_TxD)
    logits_TxV = _VocabBias(cfg, name='mlm_decoder')(embed.attend(h_TxD))
    logits_BxLxV = logits_TxV.reshape(x_BxLxD.shape[:2] + (-1,))
    logits_BxLxV = nn.with_logical_constraint(logits_BxLxV.astype(jnp.float32),
                                              ('batch', 'length', 'act_vocab'))
    if cfg.padded_vocab_size > cfg.vocab_size:
      real_V = jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size
      logits_BxLxV = jnp.where(real_V, logits_BxLxV, -1e9)
    return logits_BxLxV
