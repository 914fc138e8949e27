"""T5's bucketed relative position bias (Raffel et al. 2020, section 2.1).

Each stack has one [num_buckets, num_heads] table of scalars, added to the
attention logits of every layer of that stack. Offsets (key - query) are
mapped to buckets: exact for small distances, logarithmic up to
max_distance, and the last bucket beyond it. The encoder's buckets are
bidirectional (half for keys before the query, half after); the decoder's
are causal (only keys at or before the query).
"""

import math

import flax.linen as nn
import jax.numpy as jnp

from lm_jax.models.layers import dense_init


def relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int,
                             max_distance: int):
  """Bucket ids (int32, same shape) of `relative_position` = key - query offsets."""
  buckets = jnp.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    buckets += (relative_position > 0).astype(relative_position.dtype) * num_buckets
    distance = jnp.abs(relative_position)
  else:
    distance = -jnp.minimum(relative_position, 0)
  max_exact = num_buckets // 2
  is_small = distance < max_exact
  # log-spaced buckets from max_exact to max_distance; clipped to the last one.
  safe = jnp.maximum(distance, 1).astype(jnp.float32)
  large = max_exact + (jnp.log(safe / max_exact) / math.log(max_distance / max_exact)
                       * (num_buckets - max_exact)).astype(relative_position.dtype)
  large = jnp.minimum(large, num_buckets - 1)
  return buckets + jnp.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
  """[1, N, T, S] logit bias for T queries at q_offset, q_offset + 1, ... over S keys at
  0 .. S-1 (q_offset: the slot of a decoding step's token), from one learned bucket table."""
  cfg: object
  bidirectional: bool

  @nn.compact
  def __call__(self, T: int, S: int, q_offset=0):
    cfg = self.cfg
    table_KxN = self.param(
        'embedding', dense_init(cfg.init_std, ('positions', 'heads')),
        (cfg.relative_attention_num_buckets, cfg.num_heads), cfg.jnp_param_dtype)
    queries_T = jnp.arange(T, dtype=jnp.int32) + jnp.asarray(q_offset, jnp.int32)
    relative_TxS = jnp.arange(S, dtype=jnp.int32)[None, :] - queries_T[:, None]
    buckets_TxS = relative_position_bucket(
        relative_TxS, self.bidirectional, cfg.relative_attention_num_buckets,
        cfg.relative_attention_max_distance)
    bias_TxSxN = jnp.take(table_KxN.astype(jnp.float32), buckets_TxS, axis=0)
    bias_1xNxTxS = bias_TxSxN.transpose(2, 0, 1)[None]
    return nn.with_logical_constraint(bias_1xNxTxS, (None, 'act_heads', None, None))
