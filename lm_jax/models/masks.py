"""Attention masks as data: which keys each query may attend to.

A family builds an `AttentionMask` from the batch (segment ids of packed
documents, padding, a prefix length) and passes it to attention; attention
never looks at the batch. Kept as ids and flags rather than a dense
[B, 1, T, S] array so that each attention implementation can use what it
supports best: the CPU blockwise kernel applies the causal part by index and
builds the rest one block at a time, cuDNN gets `is_causal` and the rest as
a dense mask, XLA gets one dense mask.

  causal       query i sees keys j <= i (decoders, T5's decoder)
  segment ids  query and key must belong to the same packed document
  kv_valid     False for padding keys (BERT's padded inputs, T5 encoder keys)
  prefix_len   prefix-LM: every query also sees keys j < prefix_len
"""

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class AttentionMask:
  """What each query of a [B, T] block may attend to among [B, S] keys."""
  causal: bool = flax.struct.field(pytree_node=False, default=False)
  q_segment_ids_BxT: jax.Array | None = None
  kv_segment_ids_BxS: jax.Array | None = None
  kv_valid_BxS: jax.Array | None = None
  prefix_len_B: jax.Array | None = None

  @property
  def is_plain_causal_or_none(self) -> bool:
    """Only causal / segment / padding parts: a causal kernel can apply it by blocks."""
    return self.prefix_len_B is None

  def extras_block(self, q_start: int, q_end: int, kv_end: int):
    """[B, 1, q_end - q_start, kv_end] bool of the non-causal parts, or None."""
    allowed = None
    if self.q_segment_ids_BxT is not None:
      q_BxQ = self.q_segment_ids_BxT[:, q_start:q_end]
      kv_BxS = self.kv_segment_ids_BxS[:, :kv_end]
      allowed = (q_BxQ[:, None, :, None] == kv_BxS[:, None, None, :])
    if self.kv_valid_BxS is not None:
      valid = self.kv_valid_BxS[:, None, None, :kv_end].astype(bool)
      allowed = valid if allowed is None else allowed & valid
    return allowed

  def dense_extras(self, T: int, S: int):
    """[B, 1, T, S] bool of everything but the causal part, or None (nothing else)."""
    allowed = self.extras_block(0, T, S)
    if self.prefix_len_B is not None:
      raise ValueError('dense_extras does not express prefix-LM masks; use dense()')
    return allowed

  def dense(self, T: int, S: int):
    """[B or 1, 1, T, S] bool: the whole mask, or None when every key is allowed."""
    allowed = self.extras_block(0, T, S)
    if self.causal:
      q_T1 = jnp.arange(T)[:, None]
      k_1S = jnp.arange(S)[None, :]
      visible_TxS = k_1S <= q_T1
      if self.prefix_len_B is not None:
        visible = (visible_TxS[None, None]
                   | (k_1S[None, None] < self.prefix_len_B[:, None, None, None]))
      else:
        visible = visible_TxS[None, None]
      allowed = visible if allowed is None else allowed & visible
    return allowed


def causal_mask(segment_ids_BxL=None) -> AttentionMask:
  """Decoder self-attention: causal, within packed documents when segment ids are given."""
  return AttentionMask(causal=True, q_segment_ids_BxT=segment_ids_BxL,
                       kv_segment_ids_BxS=segment_ids_BxL)


def bidirectional_mask(valid_BxL=None, segment_ids_BxL=None) -> AttentionMask:
  """Encoder self-attention: every real key, within packed documents when given."""
  return AttentionMask(causal=False, q_segment_ids_BxT=segment_ids_BxL,
                       kv_segment_ids_BxS=segment_ids_BxL, kv_valid_BxS=valid_BxL)


def prefix_lm_mask(prefix_len_B, segment_ids_BxL=None) -> AttentionMask:
  """Prefix-LM: the first prefix_len keys are visible to all, the rest causally."""
  return AttentionMask(causal=True, q_segment_ids_BxT=segment_ids_BxL,
                       kv_segment_ids_BxS=segment_ids_BxL, prefix_len_B=prefix_len_B)


def cross_mask(kv_valid_BxS=None, q_segment_ids_BxT=None,
               kv_segment_ids_BxS=None) -> AttentionMask:
  """Decoder -> encoder attention: every real encoder key (same segment if packed)."""
  return AttentionMask(causal=False, q_segment_ids_BxT=q_segment_ids_BxT,
                       kv_segment_ids_BxS=kv_segment_ids_BxS, kv_valid_BxS=kv_valid_BxS)
