"""KV-cache decoding of the decoder family (the `Decoding` of lm_jax/models/decoding.py).

The state is {'cache': flax `cache` collection, 'start_B': first real slot of
each row (its left padding), 'real_BxS': slot >= start_B, 'slot': the slot the
next token goes to}. Slot s
of row b holds position s - start_B[b]. The prefill writes the prompts at
slots [0, P) under the causal mask over real slots; a step writes one token at
`slot` and attends to the row's real slots up to it. With `scan_layers` the
cache leaves carry a leading layer axis, as the params do.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.errors import ConfigError
from lm_jax.models.decoder.model import Decoder
from lm_jax.models.decoding import Decoding
from lm_jax.models.masks import AttentionMask


def _decode_module(model_cfg) -> Decoder:
  if model_cfg.num_stages > 1:
    raise ConfigError(f'decoding a pipelined model (config.mesh.stage={model_cfg.num_stages}) '
                      'is not supported: its params are split [stage, layers/stage, ...]; '
                      'train with mesh.stage=1 to generate from the checkpoint')
  return Decoder(dataclasses.replace(model_cfg, decode=True, dropout=0.0, remat='none'))


def init_cache(model_cfg, batch: int, total_len: int):
  """Zeros shaped like the cache of `batch` rows of `total_len` slots."""
  module = _decode_module(model_cfg)
  shapes = jax.eval_shape(lambda: module.init(
      jax.random.PRNGKey(0), jnp.zeros((batch, total_len), jnp.int32))['cache'])
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def prefill(model_cfg, params, prompts_BxP, lengths_B, total_len: int):
  """Writes the left-padded prompts into a fresh cache; logits of each row's next token."""
  B, P = prompts_BxP.shape
  start_B = (P - lengths_B).astype(jnp.int32)
  valid_BxS = jnp.arange(total_len)[None, :] >= start_B[:, None]
  positions_BxP = jnp.maximum(jnp.arange(P)[None, :] - start_B[:, None], 0)
  mask = AttentionMask(causal=True, kv_valid_BxS=valid_BxS)
  logits_Bx1xV, variables = _decode_module(model_cfg).apply(
      {'params': params, 'cache': init_cache(model_cfg, B, total_len)}, prompts_BxP,
      positions_BxL=positions_BxP, decode_mask=mask, mutable=['cache'])
  state = {'cache': variables['cache'], 'start_B': start_B, 'real_BxS': valid_BxS,
           'slot': jnp.asarray(P, jnp.int32)}
  return logits_Bx1xV[:, 0], state


def step(model_cfg, params, state, tokens_B):
  """Appends one token per row at `slot`; logits of the token after it."""
  slot, start_B = state['slot'], state['start_B']
  slots_S = jnp.arange(state['real_BxS'].shape[1])
  valid_BxS = state['real_BxS'] & (slots_S[None, :] <= slot)
  mask = AttentionMask(causal=False, kv_valid_BxS=valid_BxS)
  logits_Bx1xV, variables = _decode_module(model_cfg).apply(
      {'params': params, 'cache': state['cache']}, tokens_B[:, None],
      positions_BxL=(slot - start_B)[:, None], decode_mask=mask, mutable=['cache'])
  return logits_Bx1xV[:, 0], {**state, 'cache': variables['cache'], 'slot': slot + 1}


def select_rows(model_cfg, state, rows_B):
  """The state of rows `rows_B` (beam search reorders its beams with it)."""
  batch_axis = 1 if model_cfg.scan_layers else 0

  def take(path, leaf):
    if jax.tree_util.keystr(path[-1:]) in ("['cached_key']", "['cached_value']"):
      return jnp.take(leaf, rows_B, axis=batch_axis)
    return leaf

  return {'cache': jax.tree_util.tree_map_with_path(take, state['cache']),
          'start_B': state['start_B'][rows_B], 'real_BxS': state['real_BxS'][rows_B],
          'slot': state['slot']}


def cache_bytes_per_token(model_cfg) -> int:
  """Keys and values of every layer for one token."""
  itemsize = np.dtype(model_cfg.jnp_dtype).itemsize
  return 2 * model_cfg.num_layers * model_cfg.num_kv_heads * model_cfg.head_dim * itemsize


DECODING = Decoding(prefill=prefill, step=step, select_rows=select_rows,
                    cache_bytes_per_token=cache_bytes_per_token,
                    max_len=lambda model_cfg: model_cfg.max_len)
