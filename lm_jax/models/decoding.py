"""The interface between a family's incremental decoding and lm_jax/generate.

A family that can generate sets `Family.decoding` to a `Decoding`; the
generator (prefill, one-token steps, samplers, beam search) calls only these
functions and never asks which family it runs. The decoding state is the
family's own pytree: a decoder keeps its KV cache and the slot reached; an
encoder-decoder (T5) its cross-attention keys/values beside the decoder's
cache; a recurrent model its hidden state.

Prompts come left-padded: row b's `length_B[b]` tokens are the last ones of its
[P] row, so every row's next token is at the same step.
"""

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Decoding:
  """What a family provides for generation (all functions are jit-able)."""
  # prefill(model_cfg, params, prompts_BxP int32, lengths_B int32, total_len: int)
  #   -> (logits_BxV float32 of the token after each prompt, state); total_len:
  #   the most tokens (prompt + generated) a row will hold.
  prefill: Callable[..., tuple[Any, Any]]
  # step(model_cfg, params, state, tokens_B int32) -> (logits_BxV of the token after, state)
  step: Callable[..., tuple[Any, Any]]
  # select_rows(model_cfg, state, rows_B int32) -> the state of those rows (beam search)
  select_rows: Callable[..., Any]
  # cache_bytes_per_token(model_cfg) -> bytes the state grows by per token of a row
  cache_bytes_per_token: Callable[[Any], int]
  # max_len(model_cfg) -> the most tokens a row may hold (None: no limit)
  max_len: Callable[[Any], int | None] = lambda model_cfg: None
  # for_tokenizer(model_cfg, special_ids {role: id}) -> the model_cfg to decode with
  #   (T5: its decoder starts from the run's <pad>); the loader of a run applies it.
  for_tokenizer: Callable[[Any, dict], Any] = lambda model_cfg, special_ids: model_cfg
