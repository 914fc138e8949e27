"""Decoding of the rnn family (the `Decoding` of lm_jax/models/decoding.py): it carries its state.

The state is {'cache': flax `cache` collection}: per layer, the `carry` ((h, c)
for lstm, (h,) for gru and rnn, float32 [B, H]) after the last token fed. Its
size does not grow with the sequence. The prefill runs the left-padded prompts
with the state reset to zeros at each row's first real token (padding before
it is run but forgotten), so a padded row ends in the state of its unpadded
prompt; a step feeds one token per row and updates the state.
"""

import dataclasses

import jax
import jax.numpy as jnp

from lm_jax.models.decoding import Decoding
from lm_jax.models.rnn.model import RNNLM


def _decode_module(model_cfg) -> RNNLM:
  return RNNLM(dataclasses.replace(model_cfg, decode=True, dropout=0.0))


def prefill(model_cfg, params, prompts_BxP, lengths_B, total_len: int):
  """Runs the prompts from a zero state; logits of each row's next token and the final state."""
  del total_len  # the state has a fixed size
  P = prompts_BxP.shape[1]
  start_B = (P - lengths_B).astype(jnp.int32)
  # Padding is document 0 and the prompt document 1: the state resets where the prompt starts.
  segment_ids_BxP = (jnp.arange(P)[None, :] >= start_B[:, None]).astype(jnp.int32)
  logits_Bx1xV, variables = _decode_module(model_cfg).apply(
      {'params': params}, prompts_BxP, segment_ids_BxP, mutable=['cache'])
  return logits_Bx1xV[:, 0], {'cache': variables['cache']}


def step(model_cfg, params, state, tokens_B):
  """Feeds one token per row; logits of the token after it."""
  logits_Bx1xV, variables = _decode_module(model_cfg).apply(
      {'params': params, 'cache': state['cache']}, tokens_B[:, None], mutable=['cache'])
  return logits_Bx1xV[:, 0], {'cache': variables['cache']}


def select_rows(model_cfg, state, rows_B):
  """The state of rows `rows_B` (every leaf is [B, H])."""
  del model_cfg
  return jax.tree.map(lambda leaf: jnp.take(leaf, rows_B, axis=0), state)


def cache_bytes_per_token(model_cfg) -> int:
  """0: the state is [layers, B, H] (and c for lstm) whatever the length."""
  del model_cfg
  return 0


DECODING = Decoding(prefill=prefill, step=step, select_rows=select_rows,
                    cache_bytes_per_token=cache_bytes_per_token)
