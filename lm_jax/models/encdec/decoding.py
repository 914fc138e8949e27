"""Decoding of the encdec (T5) family (the `Decoding` of lm_jax/models/decoding.py).

The prompts are the encoder's input: left-padded, with the padding masked out
of the encoder and of cross-attention (the relative position bias sees only
offsets, so a padded row encodes as its unpadded prompt). The encoder runs
once, in the prefill, and every decoder layer stores the cross-attention
keys/values of its output; the decoder starts from `decoder_start_id` (T5's
<pad>) at slot 0 and caches its self-attention keys/values as the decoder
family does. The state is {'cache': flax `cache` collection, 'encoder_valid_BxS',
'slot': the decoder slot of the next token}; every row's decoder is at the
same slot (no decoder padding). With `scan_layers` the cache leaves carry a
leading layer axis, as the params do (the batch is then their axis 1).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.models.decoding import Decoding
from lm_jax.models.encdec.model import EncoderDecoder
from lm_jax.models.masks import AttentionMask


def _modules(model_cfg):
  """(the encoder's module, the decoder's module in decode mode): the same params."""
  cfg = dataclasses.replace(model_cfg, dropout=0.0, remat='none')
  return EncoderDecoder(cfg), EncoderDecoder(dataclasses.replace(cfg, decode=True))


def _self_mask(slot, B: int, S: int) -> AttentionMask:
  """The decoder's real cache slots up to `slot` (all rows alike)."""
  valid_BxS = jnp.broadcast_to(jnp.arange(S)[None, :] <= slot, (B, S))
  return AttentionMask(causal=False, kv_valid_BxS=valid_BxS)


def prefill(model_cfg, params, prompts_BxP, lengths_B, total_len: int):
  """Encodes the prompts, stores each layer's cross keys/values, feeds the start token."""
  encoder, decoder = _modules(model_cfg)
  B, P = prompts_BxP.shape
  S = max(total_len - P, 1)  # decoder slots: the start token and the new tokens but the last
  valid_BxP = jnp.arange(P)[None, :] >= (P - lengths_B)[:, None]
  encoded_BxPxD = encoder.apply({'params': params}, prompts_BxP, valid_BxP,
                                method=EncoderDecoder.encode)
  # Shapes of the cache: a (never run) decoder pass over all S slots creates it.
  shapes = jax.eval_shape(lambda: decoder.apply(
      {'params': params}, jnp.zeros((B, S), jnp.int32), encoded_BxPxD, valid_BxP,
      method=EncoderDecoder.decode, mutable=['cache'])[1]['cache'])
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  start_Bx1 = jnp.full((B, 1), model_cfg.decoder_start_id, jnp.int32)
  slot = jnp.asarray(0, jnp.int32)
  logits_Bx1xV, variables = decoder.apply(
      {'params': params, 'cache': cache}, start_Bx1, encoded_BxPxD, valid_BxP,
      _self_mask(slot, B, S), slot, method=EncoderDecoder.decode, mutable=['cache'])
  state = {'cache': variables['cache'], 'encoder_valid_BxS': valid_BxP, 'slot': slot + 1}
  return logits_Bx1xV[:, 0], state


def _decoder_slots(model_cfg, cache) -> int:
  """S: the decoder's cache slots ([B, S, K, H] keys; [layers, B, S, K, H] when scanned)."""
  if model_cfg.scan_layers:
    return cache['decoder']['layers']['attn']['cached_key'].shape[2]
  return cache['decoder']['layer_0']['attn']['cached_key'].shape[1]


def step(model_cfg, params, state, tokens_B):
  """Feeds one token per row to the decoder at `slot`; logits of the token after it."""
  _, decoder = _modules(model_cfg)
  slot, valid_BxP = state['slot'], state['encoder_valid_BxS']
  S = _decoder_slots(model_cfg, state['cache'])
  logits_Bx1xV, variables = decoder.apply(
      {'params': params, 'cache': state['cache']}, tokens_B[:, None], None, valid_BxP,
      _self_mask(slot, tokens_B.shape[0], S), slot, method=EncoderDecoder.decode,
      mutable=['cache'])
  return logits_Bx1xV[:, 0], {**state, 'cache': variables['cache'], 'slot': slot + 1}


_PER_ROW = ("['cached_key']", "['cached_value']", "['cross_key']", "['cross_value']")


def select_rows(model_cfg, state, rows_B):
  """The state of rows `rows_B`: the self and cross keys/values and the encoder's padding
  (the cache indices, [] or [layers], are the same for every row)."""
  batch_axis = 1 if model_cfg.scan_layers else 0

  def take(path, leaf):
    if jax.tree_util.keystr(path[-1:]) in _PER_ROW:
      return jnp.take(leaf, rows_B, axis=batch_axis)
    return leaf

  cache = jax.tree_util.tree_map_with_path(take, state['cache'])
  return {**state, 'cache': cache, 'encoder_valid_BxS': state['encoder_valid_BxS'][rows_B]}


def cache_bytes_per_token(model_cfg) -> int:
  """Self-attention keys and values of every decoder layer for one generated token (the
  cross-attention keys/values, 2 x layers x heads x head_dim per prompt token, are fixed)."""
  itemsize = np.dtype(model_cfg.jnp_dtype).itemsize
  return 2 * model_cfg.num_decoder_layers * model_cfg.num_kv_heads * model_cfg.head_dim * itemsize


def for_tokenizer(model_cfg, special_ids: dict):
  """The decoder starts from the run's <pad>, as its seq2seq / span_corruption batches do."""
  if 'pad' not in special_ids:
    return model_cfg
  return dataclasses.replace(model_cfg, decoder_start_id=int(special_ids['pad']))


DECODING = Decoding(prefill=prefill, step=step, select_rows=select_rows,
                    cache_bytes_per_token=cache_bytes_per_token, for_tokenizer=for_tokenizer)
