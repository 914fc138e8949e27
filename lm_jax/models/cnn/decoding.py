"""Decoding of the cnn family (the `Decoding` of lm_jax/models/decoding.py): a token window.

A gated CNN's logits at position t depend only on the last R = layers * (k - 1) + 1
tokens (each causal convolution of k taps reaches k - 1 back), so the state is
that window: {'window_BxR': its tokens, 'real_BxR': which are prompt or
generated tokens, not padding}. Each step shifts the new token in and runs the
model over the R tokens, taking the last position's logits: R positions of work
per token, however long the sequence grows (no cache of per-layer taps). Padding
is document 0 and the real tokens document 1, so real tokens' taps read zeros
where the padding is, as at the start of an unpadded sequence.
"""

import dataclasses

import jax.numpy as jnp

from lm_jax.models.cnn.model import GatedCNN
from lm_jax.models.decoding import Decoding


def receptive_field(model_cfg) -> int:
  """Tokens the last position's logits depend on: layers * (kernel_size - 1) + 1."""
  return model_cfg.num_layers * (model_cfg.kernel_size - 1) + 1


def _last_logits(model_cfg, params, state):
  model = GatedCNN(dataclasses.replace(model_cfg, dropout=0.0))
  logits_BxRxV = model.apply({'params': params}, state['window_BxR'],
                             state['real_BxR'].astype(jnp.int32))
  return logits_BxRxV[:, -1]


def prefill(model_cfg, params, prompts_BxP, lengths_B, total_len: int):
  """The last R prompt tokens (padded on the left when shorter) and the logits after them."""
  del total_len  # the window has a fixed size
  R = receptive_field(model_cfg)
  P = prompts_BxP.shape[1]
  real_BxP = jnp.arange(P)[None, :] >= (P - lengths_B)[:, None]
  if P < R:
    prompts_BxP = jnp.pad(prompts_BxP, ((0, 0), (R - P, 0)))
    real_BxP = jnp.pad(real_BxP, ((0, 0), (R - P, 0)))
  state = {'window_BxR': prompts_BxP[:, -R:].astype(jnp.int32), 'real_BxR': real_BxP[:, -R:]}
  return _last_logits(model_cfg, params, state), state


def step(model_cfg, params, state, tokens_B):
  """Shifts one token per row into the window; logits of the token after it."""
  window_BxR = jnp.concatenate([state['window_BxR'][:, 1:],
                                tokens_B[:, None].astype(jnp.int32)], axis=1)
  real_BxR = jnp.concatenate([state['real_BxR'][:, 1:],
                              jnp.ones_like(state['real_BxR'][:, :1])], axis=1)
  state = {'window_BxR': window_BxR, 'real_BxR': real_BxR}
  return _last_logits(model_cfg, params, state), state


def select_rows(model_cfg, state, rows_B):
  """The windows of rows `rows_B` (beam search)."""
  del model_cfg
  return {k: jnp.take(v, rows_B, axis=0) for k, v in state.items()}


def cache_bytes_per_token(model_cfg) -> int:
  """0: the window holds R tokens whatever the length."""
  del model_cfg
  return 0


DECODING = Decoding(prefill=prefill, step=step, select_rows=select_rows,
                    cache_bytes_per_token=cache_bytes_per_token)
