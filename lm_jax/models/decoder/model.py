"""Decoder-only Transformer language model: GPT-2 and Llama styles by config."""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.attention import Attention
from lm_jax.models.config import TransformerConfig
from lm_jax.models.layers import Mlp, Norm, as_token_rows
from lm_jax.models.masks import AttentionMask, causal_mask
from lm_jax.models.pipeline import Pipeline

# Named remat presets: which intermediates the backward pass may keep.
REMAT_POLICIES = {
    'full': None,  # save nothing inside a block, recompute everything
    'dots_saveable': jax.checkpoint_policies.dots_saveable,
    'dots_with_no_batch_dims_saveable':
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}

ACTIVATION_AXES = ('batch', 'length', 'act_embed')


class DecoderBlock(nn.Module):
  """Pre-norm block: x + attn(norm(x)); x + mlp(norm(x))."""
  cfg: TransformerConfig
  deterministic: bool

  @nn.compact
  def __call__(self, x_BxLxD, positions_BxL, mask: AttentionMask):
    cfg = self.cfg
    # GPT-2's scaled init of the projections that write into the residual.
    out_std = cfg.init_std / math.sqrt(2 * cfg.num_layers)
    x_BxLxD = nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)
    h_BxLxD = Norm(cfg, name='attn_norm')(x_BxLxD)
    x_BxLxD = x_BxLxD + Attention(cfg, out_std, name='attn')(
        h_BxLxD, mask, positions_BxL, deterministic=self.deterministic)
    h_BxLxD = Norm(cfg, name='mlp_norm')(x_BxLxD)
    x_BxLxD = x_BxLxD + Mlp(cfg, out_std, name='mlp')(h_BxLxD,
                                                      self.deterministic)
    return nn.with_logical_constraint(x_BxLxD, ACTIVATION_AXES)


class _ScannedBlock(DecoderBlock):
  """The (carry, x) -> (carry, y) signature nn.scan wants."""

  def __call__(self, x_BxLxD, positions_BxL, mask):
    return super().__call__(x_BxLxD, positions_BxL, mask), None


def _block_class(cfg: TransformerConfig):
  block = _ScannedBlock if cfg.scan_layers else DecoderBlock
  if cfg.remat != 'none':
    block = nn.remat(block, policy=REMAT_POLICIES[cfg.remat],
                     prevent_cse=not cfg.scan_layers)
  return block


class Decoder(nn.Module):
  """tokens [B, L] -> logits [B, L, V] (float32), causal by default."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, inputs_BxL, positions_BxL=None, segment_ids_BxL=None,
               padding_mask_BxL=None, deterministic: bool = True,
               decode_mask: AttentionMask | None = None):
    """`decode_mask` (cfg.decode): the mask over the KV cache's slots; the logits are
    then the last position's only, [B, 1, V] (lm_jax/models/decoder/decoding.py)."""
    cfg = self.cfg
    if positions_BxL is None:
      positions_BxL = jnp.broadcast_to(jnp.arange(inputs_BxL.shape[1]),
                                       inputs_BxL.shape)
    embed = nn.Embed(
        cfg.padded_vocab_size, cfg.d_model, dtype=cfg.jnp_dtype,
        param_dtype=cfg.jnp_param_dtype,
        embedding_init=nn.with_logical_partitioning(
            nn.initializers.normal(cfg.init_std), ('vocab', 'embed')),
        name='embed')
    x_BxLxD = embed(inputs_BxL)
    if cfg.position == 'learned':
      x_BxLxD += nn.Embed(
          cfg.max_len, cfg.d_model, dtype=cfg.jnp_dtype,
          param_dtype=cfg.jnp_param_dtype,
          embedding_init=nn.with_logical_partitioning(
              nn.initializers.normal(cfg.init_std), ('positions', 'embed')),
          name='pos_embed')(positions_BxL)
    x_BxLxD = nn.Dropout(cfg.dropout)(x_BxLxD, deterministic=deterministic)
    # Training batches need no padding mask (right padding: a causal query
    # never sees later keys, and padded targets weigh 0); packed documents
    # need their segment ids; left-padded prompts their padding mask.
    mask = causal_mask(segment_ids_BxL)
    if padding_mask_BxL is not None:
      mask = mask.replace(kv_valid_BxS=padding_mask_BxL)
    if decode_mask is not None:
      mask = decode_mask

    block = _block_class(cfg)
    if cfg.num_stages > 1:
      # Blocks in `stage` groups, microbatches on a GPipe schedule.
      scanned = _block_class(dataclasses.replace(cfg, scan_layers=True))
      x_BxLxD = Pipeline(cfg, deterministic, scanned, name='pipeline')(
          x_BxLxD, positions_BxL, mask)
    elif cfg.scan_layers:
      x_BxLxD, _ = nn.scan(
          block, variable_axes={'params': 0, 'cache': 0}, split_rngs={'params': True,
                                                          'dropout': True},
          in_axes=(nn.broadcast, nn.broadcast), length=cfg.num_layers,
          metadata_params={nn.PARTITION_NAME: 'layers'},
      )(cfg, deterministic, name='layers')(x_BxLxD, positions_BxL, mask)
    else:
      for i in range(cfg.num_layers):
        x_BxLxD = block(cfg, deterministic, name=f'layer_{i}')(
            x_BxLxD, positions_BxL, mask)

    if cfg.decode:  # only the next token's logits are sampled from
      x_BxLxD = x_BxLxD[:, -1:]
    x_BxLxD = Norm(cfg, name='final_norm')(x_BxLxD)
    # The logits matmul on [B * L, D] rows: see layers.matmul_2d for why.
    x_TxD = as_token_rows(x_BxLxD.reshape(-1, cfg.d_model))
    if cfg.tie_embeddings:
      logits_TxV = embed.attend(x_TxD)
    else:
      logits_TxV = nn.Dense(
          cfg.padded_vocab_size, use_bias=False, dtype=cfg.jnp_dtype,
          param_dtype=cfg.jnp_param_dtype,
          kernel_init=nn.with_logical_partitioning(
              nn.initializers.normal(cfg.init_std), ('embed', 'vocab')),
          name='lm_head')(x_TxD)
    logits_BxLxV = logits_TxV.reshape(x_BxLxD.shape[:2] + (-1,))
    logits_BxLxV = nn.with_logical_constraint(
        logits_BxLxV.astype(jnp.float32), ('batch', 'length', 'act_vocab'))
    if cfg.padded_vocab_size > cfg.vocab_size:
      # Padding rows are not tokens: give them no probability mass.
      real_V = jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size
      logits_BxLxV = jnp.where(real_V, logits_BxLxV, -1e9)
    return logits_BxLxV
