"""T5: an encoder stack, a decoder stack with cross-attention, and an LM head.

Pre-norm blocks with RMSNorm (T5's LayerNorm has no mean and no bias), no
biases anywhere, attention logits unscaled (T5 folds 1/sqrt(d) into the query
init) plus each stack's relative position bias (relative_position.py), ReLU
(v1.0) or gated-GELU (v1.1) MLPs. With tied embeddings (v1.0) the decoder's
output is scaled by d_model**-0.5 before the shared embedding's transpose.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.attention import Attention
from lm_jax.models.encdec.config import EncDecConfig
from lm_jax.models.encdec.relative_position import RelativePositionBias
from lm_jax.models.layers import EinsumDense, Norm, as_token_rows
from lm_jax.models.masks import AttentionMask, bidirectional_mask, causal_mask, cross_mask

ACTIVATION_AXES = ('batch', 'length', 'act_embed')


class FeedForward(nn.Module):
  """relu: wo(relu(wi x)); gated-gelu: wo(gelu(wi_0 x) * wi_1 x)."""
  cfg: EncDecConfig

  @nn.compact
  def __call__(self, x_BxLxD, deterministic: bool):
    cfg = self.cfg

    def dense(shape, axes, name):
      return EinsumDense('bld,df->blf', shape, axes, 0, cfg.init_std, cfg, name=name)

    up = ((cfg.d_model, cfg.mlp_dim), ('embed', 'mlp'))
    if cfg.feed_forward == 'gated-gelu':
      h_BxLxF = (jax.nn.gelu(dense(*up, 'wi_0')(x_BxLxD), approximate=True)
                 * dense(*up, 'wi_1')(x_BxLxD))
    else:
      h_BxLxF = jax.nn.relu(dense(*up, 'wi')(x_BxLxD))
    h_BxLxF = nn.Dropout(cfg.dropout)(h_BxLxF, deterministic=deterministic)
    h_BxLxF = nn.with_logical_constraint(h_BxLxF, ('batch', 'length', 'act_mlp'))
    out_BxLxD = dense((cfg.mlp_dim, cfg.d_model), ('mlp', 'embed'), 'wo')(h_BxLxF)
    return nn.Dropout(cfg.dropout)(out_BxLxD, deterministic=deterministic)


class Block(nn.Module):
  """x + attn(norm(x)) [+ cross(norm(x), encoder)] + mlp(norm(x))."""
  cfg: EncDecConfig
  deterministic: bool
  cross: bool  # decoder blocks attend to the encoder output

  @nn.compact
  def __call__(self, x_BxLxD, mask: AttentionMask, bias_1xNxLxL, encoded_BxSxD=None,
               cross: AttentionMask | None = None):
    cfg, det = self.cfg, self.deterministic
    x_BxLxD = nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)
    h_BxLxD = Norm(cfg, name='attn_norm')(x_BxLxD)
    x_BxLxD = x_BxLxD + Attention(cfg, cfg.init_std, scale=1.0, name='attn')(
        h_BxLxD, mask, bias_BxNxTxS=bias_1xNxLxL, deterministic=det)
    if self.cross:
      h_BxLxD = Norm(cfg, name='cross_norm')(x_BxLxD)
      x_BxLxD = x_BxLxD + Attention(cfg, cfg.init_std, scale=1.0, name='cross_attn')(
          h_BxLxD, cross, kv_BxSxD=encoded_BxSxD, deterministic=det)
    h_BxLxD = Norm(cfg, name='mlp_norm')(x_BxLxD)
    x_BxLxD = x_BxLxD + FeedForward(cfg, name='mlp')(h_BxLxD, det)
    return nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)


class Stack(nn.Module):
  """Embedded tokens [B, L, D] -> the normed output of `num_layers` blocks.

  The relative position bias is computed once per call and shared by every
  layer of the stack (bidirectional buckets in the encoder, causal in the decoder).
  """
  cfg: EncDecConfig
  num_layers: int
  is_decoder: bool
  deterministic: bool

  @nn.compact
  def __call__(self, x_BxLxD, mask: AttentionMask, encoded_BxSxD=None,
               cross: AttentionMask | None = None):
    cfg = self.cfg
    L = x_BxLxD.shape[1]
    bias_1xNxLxL = RelativePositionBias(cfg, bidirectional=not self.is_decoder,
                                        name='relative_bias')(L, L)
    x_BxLxD = nn.Dropout(cfg.dropout)(x_BxLxD, deterministic=self.deterministic)
    for i in range(self.num_layers):
      x_BxLxD = Block(cfg, self.deterministic, self.is_decoder, name=f'layer_{i}')(
          x_BxLxD, mask, bias_1xNxLxL, encoded_BxSxD, cross)
    x_BxLxD = Norm(cfg, name='final_norm')(x_BxLxD)
    return nn.Dropout(cfg.dropout)(x_BxLxD, deterministic=self.deterministic)


class EncoderDecoder(nn.Module):
  """(encoder tokens [B, S], their validity, decoder tokens [B, T]) -> logits [B, T, V] fp32."""
  cfg: EncDecConfig

  @nn.compact
  def __call__(self, encoder_inputs_BxS, decoder_inputs_BxT, encoder_valid_BxS=None,
               deterministic: bool = True):
    cfg = self.cfg
    embed = nn.Embed(
        cfg.padded_vocab_size, cfg.d_model, dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype,
        embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(cfg.init_std), ('vocab', 'embed')),
        name='embed')
    if encoder_valid_BxS is not None:
      encoder_valid_BxS = encoder_valid_BxS.astype(bool)
    encoded_BxSxD = Stack(cfg, cfg.num_layers, False, deterministic, name='encoder')(
        embed(encoder_inputs_BxS), bidirectional_mask(encoder_valid_BxS))
    x_BxTxD = Stack(cfg, cfg.num_decoder_layers, True, deterministic, name='decoder')(
        embed(decoder_inputs_BxT), causal_mask(), encoded_BxSxD,
        cross_mask(encoder_valid_BxS))
    x_TxD = as_token_rows(x_BxTxD.reshape(-1, cfg.d_model))
    if cfg.tie_embeddings:
      logits_TxV = embed.attend(x_TxD * jnp.asarray(cfg.d_model ** -0.5, x_TxD.dtype))
    else:
      logits_TxV = EinsumDense('td,dv->tv', (cfg.d_model, cfg.padded_vocab_size),
                               ('embed', 'vocab'), 0, cfg.init_std, cfg,
                               name='lm_head')(x_TxD)
    logits_BxTxV = logits_TxV.reshape(x_BxTxD.shape[:2] + (-1,))
    logits_BxTxV = nn.with_logical_constraint(
        logits_BxTxV.astype(jnp.float32), ('batch', 'length', 'act_vocab'))
    if cfg.padded_vocab_size > cfg.vocab_size:
      real_V = jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size
      logits_BxTxV = jnp.where(real_V, logits_BxTxV, -1e9)
    return logits_BxTxV
