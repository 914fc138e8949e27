"""T5: an encoder stack, a decoder stack with cross-attention, and an LM head.

Pre-norm blocks with RMSNorm (T5's LayerNorm has no mean and no bias), no
biases anywhere, attention logits unscaled (T5 folds 1/sqrt(d) into the query
init) plus each stack's relative position bias (relative_position.py), ReLU
(v1.0) or gated-GELU (v1.1) MLPs. With tied embeddings (v1.0) the decoder's
output is scaled by d_model**-0.5 before the shared embedding's transpose.
With `scan_layers` each stack's blocks are one nn.scan over `layers` (params
and the decoder's `cache` get a leading layer axis); `remat` wraps the block.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.attention import Attention
from lm_jax.models.decoder.model import REMAT_POLICIES
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
  with_cross: bool  # decoder blocks attend to the encoder output

  @nn.compact
  def __call__(self, x_BxLxD, mask: AttentionMask, bias_1xNxLxL, encoded_BxSxD=None,
               encoder_mask: AttentionMask | None = None):
    cfg, det = self.cfg, self.deterministic
    x_BxLxD = nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)
    h_BxLxD = Norm(cfg, name='attn_norm')(x_BxLxD)
    x_BxLxD = x_BxLxD + Attention(cfg, cfg.init_std, scale=1.0, name='attn')(
        h_BxLxD, mask, bias_BxNxTxS=bias_1xNxLxL, deterministic=det)
    if self.with_cross:  # no encoder output: decoding, its keys/values are in the cache
      h_BxLxD = Norm(cfg, name='cross_norm')(x_BxLxD)
      x_BxLxD = x_BxLxD + Attention(cfg, cfg.init_std, scale=1.0, name='cross_attn')(
          h_BxLxD, encoder_mask, kv_BxSxD=encoded_BxSxD, deterministic=det,
          cached_cross_kv=encoded_BxSxD is None)
    h_BxLxD = Norm(cfg, name='mlp_norm')(x_BxLxD)
    x_BxLxD = x_BxLxD + FeedForward(cfg, name='mlp')(h_BxLxD, det)
    return nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)


class _ScannedBlock(Block):
  """The (carry, x) -> (carry, y) signature nn.scan wants."""

  def __call__(self, x_BxLxD, mask, bias_1xNxLxL, encoded_BxSxD=None, encoder_mask=None):
    return super().__call__(x_BxLxD, mask, bias_1xNxLxL, encoded_BxSxD, encoder_mask), None


def _block_class(cfg: EncDecConfig):
  block = _ScannedBlock if cfg.scan_layers else Block
  if cfg.remat != 'none':
    block = nn.remat(block, policy=REMAT_POLICIES[cfg.remat], prevent_cse=not cfg.scan_layers)
  return block


class Stack(nn.Module):
  """Embedded tokens [B, L, D] -> the normed output of `num_layers` blocks.

  The relative position bias is computed once per call and shared by every
  layer of the stack (bidirectional buckets in the encoder, causal in the decoder).
  Decoding gives the `slot` of the first token: the keys are then the cache's
  slots (the mask's kv_valid_BxS) and the queries sit at slot, slot + 1, ...
  """
  cfg: EncDecConfig
  num_layers: int
  is_decoder: bool

  @nn.compact
  def __call__(self, x_BxLxD, mask: AttentionMask, encoded_BxSxD=None,
               encoder_mask: AttentionMask | None = None, slot=None,
               deterministic: bool = True):
    cfg = self.cfg
    L = x_BxLxD.shape[1]
    S, offset = (L, 0) if slot is None else (mask.kv_valid_BxS.shape[1], slot)
    # In the compute dtype: cuDNN's fused attention (GPU, bf16) wants the bias like q.
    bias_1xNxLxL = RelativePositionBias(cfg, bidirectional=not self.is_decoder,
                                        name='relative_bias')(L, S, offset).astype(cfg.jnp_dtype)
    x_BxLxD = nn.Dropout(cfg.dropout)(x_BxLxD, deterministic=deterministic)
    block = _block_class(cfg)
    args = (mask, bias_1xNxLxL, encoded_BxSxD, encoder_mask)
    if cfg.scan_layers:  # mask, bias and the encoder's output are the same for every layer
      x_BxLxD, _ = nn.scan(
          block, variable_axes={'params': 0, 'cache': 0},
          split_rngs={'params': True, 'dropout': True}, in_axes=(nn.broadcast,) * len(args),
          length=self.num_layers, metadata_params={nn.PARTITION_NAME: 'layers'},
      )(cfg, deterministic, self.is_decoder, name='layers')(x_BxLxD, *args)
    else:
      for i in range(self.num_layers):
        x_BxLxD = block(cfg, deterministic, self.is_decoder, name=f'layer_{i}')(x_BxLxD, *args)
    x_BxLxD = Norm(cfg, name='final_norm')(x_BxLxD)
    return nn.Dropout(cfg.dropout)(x_BxLxD, deterministic=deterministic)


class EncoderDecoder(nn.Module):
  """(encoder tokens [B, S], their validity, decoder tokens [B, T]) -> logits [B, T, V] fp32.

  `encode` and `decode` are the two halves, for decoding (lm_jax/models/encdec/decoding.py):
  with `cfg.decode` the decoder caches its self-attention keys/values and each
  layer's cross-attention keys/values (computed from the encoder output once).
  """
  cfg: EncDecConfig

  def setup(self):
    cfg = self.cfg
    self.embed = nn.Embed(
        cfg.padded_vocab_size, cfg.d_model, dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype,
        embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(cfg.init_std), ('vocab', 'embed')))
    self.encoder = Stack(cfg, cfg.num_layers, False)
    self.decoder = Stack(cfg, cfg.num_decoder_layers, True)
    if not cfg.tie_embeddings:
      self.lm_head = EinsumDense('td,dv->tv', (cfg.d_model, cfg.padded_vocab_size),
                                 ('embed', 'vocab'), 0, cfg.init_std, cfg)

  def __call__(self, encoder_inputs_BxS, decoder_inputs_BxT, encoder_valid_BxS=None,
               deterministic: bool = True):
    encoded_BxSxD = self.encode(encoder_inputs_BxS, encoder_valid_BxS, deterministic)
    return self.decode(decoder_inputs_BxT, encoded_BxSxD, encoder_valid_BxS,
                       deterministic=deterministic)

  def encode(self, encoder_inputs_BxS, encoder_valid_BxS=None, deterministic: bool = True):
    """The encoder's output [B, S, D]."""
    if encoder_valid_BxS is not None:
      encoder_valid_BxS = encoder_valid_BxS.astype(bool)
    return self.encoder(self.embed(encoder_inputs_BxS), bidirectional_mask(encoder_valid_BxS),
                        deterministic=deterministic)

  def decode(self, decoder_inputs_BxT, encoded_BxSxD, encoder_valid_BxS=None,
             self_mask: AttentionMask | None = None, slot=None, deterministic: bool = True):
    """Logits [B, T, V] of the decoder over the encoder output. Decoding passes the mask
    over the cache slots and the `slot` of the first token (its relative positions)."""
    cfg = self.cfg
    if encoder_valid_BxS is not None:
      encoder_valid_BxS = encoder_valid_BxS.astype(bool)
    x_BxTxD = self.decoder(self.embed(decoder_inputs_BxT),
                           causal_mask() if self_mask is None else self_mask, encoded_BxSxD,
                           cross_mask(encoder_valid_BxS), slot, deterministic)
    x_TxD = as_token_rows(x_BxTxD.reshape(-1, cfg.d_model))
    if cfg.tie_embeddings:
      logits_TxV = self.embed.attend(x_TxD * jnp.asarray(cfg.d_model ** -0.5, x_TxD.dtype))
    else:
      logits_TxV = self.lm_head(x_TxD)
    logits_BxTxV = logits_TxV.reshape(x_BxTxD.shape[:2] + (-1,))
    logits_BxTxV = nn.with_logical_constraint(
        logits_BxTxV.astype(jnp.float32), ('batch', 'length', 'act_vocab'))
    if cfg.padded_vocab_size > cfg.vocab_size:
      real_V = jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size
      logits_BxTxV = jnp.where(real_V, logits_BxTxV, -1e9)
    return logits_BxTxV
