"""The decode loop: a compiled prefill, then a compiled one-token step, until every row stopped.

Prompts are left-padded to a length bucket (a multiple of `bucket`), and the
cache to one too, so a chat or a file of prompts compiles once per bucket, not
per prompt. The step donates the decoding state (the KV cache is updated in
place) and samples on the device; the host reads the [B] new tokens each step
to apply stop tokens and stop strings, stream text, and exit early once every
row has stopped.
"""

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.errors import ConfigError
from lm_jax.generate.sampling import SampleConfig, sample
from lm_jax.models.decoding import Decoding


@dataclasses.dataclass
class Generated:
  """One row's result: its new tokens (without the stop token), text, and why it ended."""
  tokens: list[int]
  text: str | None
  finish: str  # 'stop_token' | 'stop_string' | 'length'


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _row_keys(seed: int, row_ids_B):
  base = jax.random.PRNGKey(seed)
  return jax.vmap(lambda r: jax.random.fold_in(base, r))(jnp.asarray(row_ids_B, jnp.uint32))


class Generator:
  """Compiled prefill and step of one model; `generate` runs batches of prompts through them.

  `batch_sharding`: where prompt rows go (the training mesh's batch axes);
  call inside `jax.set_mesh(mesh)` and `nn.logical_axis_rules(rules)` when sharded.
  """

  def __init__(self, decoding: Decoding, model_cfg: Any, params: Any, sample_cfg: SampleConfig,
               *, bucket: int = 16, batch_sharding=None):
    self.decoding, self.model_cfg, self.params = decoding, model_cfg, params
    self.sample_cfg, self.bucket, self.batch_sharding = sample_cfg, bucket, batch_sharding
    self._start = jax.jit(self._start_fn, static_argnames=('total_len',))
    self._next = jax.jit(self._next_fn, donate_argnums=(1, 3))

  def _start_fn(self, params, prompts_BxP, lengths_B, seen_BxV, keys_B, *, total_len):
    logits_BxV, state = self.decoding.prefill(self.model_cfg, params, prompts_BxP, lengths_B,
                                              total_len)
    keys_B = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys_B)
    return logits_BxV, sample(keys_B, logits_BxV, seen_BxV, self.sample_cfg), state

  def _next_fn(self, params, state, tokens_B, seen_BxV, keys_B, i):
    seen_BxV = seen_BxV.at[jnp.arange(tokens_B.shape[0]), tokens_B].set(True)
    logits_BxV, state = self.decoding.step(self.model_cfg, params, state, tokens_B)
    keys_B = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys_B)
    return logits_BxV, sample(keys_B, logits_BxV, seen_BxV, self.sample_cfg), state, seen_BxV

  def shapes(self, longest_prompt: int, max_new_tokens: int) -> tuple[int, int]:
    """(padded prompt length, cache length) for these sizes: the compiled bucket."""
    limit = self.decoding.max_len(self.model_cfg)
    if limit is not None and max_new_tokens >= limit:
      raise ConfigError(f'config.sample.max_new_tokens={max_new_tokens}: the model holds '
                        f'{limit} tokens (model.max_len); ask for fewer than {limit}')
    prompt_len = round_up(max(longest_prompt, 1), self.bucket)
    total_len = round_up(prompt_len + max_new_tokens, self.bucket)
    if limit is not None:
      prompt_len = min(prompt_len, limit - max_new_tokens)
      total_len = min(total_len, limit)
    return prompt_len, total_len

  def padded_prompts(self, prompts: Sequence[Sequence[int]], prompt_len: int):
    """Left-padded [B, P] prompts (longer ones keep their last P tokens), lengths, seen tokens."""
    vocab = self.model_cfg.padded_vocab_size
    prompts_BxP = np.zeros((len(prompts), prompt_len), np.int32)
    lengths_B = np.zeros(len(prompts), np.int32)
    seen_BxV = np.zeros((len(prompts), vocab), bool)
    for b, ids in enumerate(prompts):
      ids = np.asarray(ids, np.int32)[-prompt_len:]
      if ids.size == 0:
        raise ConfigError(f'prompt {b} is empty: give at least one token')
      prompts_BxP[b, prompt_len - ids.size:] = ids
      lengths_B[b] = ids.size
      seen_BxV[b, ids] = True
    return prompts_BxP, lengths_B, seen_BxV

  def _put(self, x):
    return jnp.asarray(x) if self.batch_sharding is None else jax.device_put(
        x, self.batch_sharding)

  def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, seed: int = 0,
               stop_tokens: Sequence[int] = (), stop_strings: Sequence[str] = (),
               decode: Callable[[list[int]], str] | None = None, row_ids=None,
               on_step: Callable[[list['Generated']], None] | None = None,
               keep_logits: bool = False):
    """Generates up to `max_new_tokens` after each prompt (token id lists).

    `decode(ids) -> text` gives each row's text (needed for stop strings);
    `row_ids` name the rows for their sampling keys (default 0..B-1), so a row
    samples the same tokens alone or in any batch; `on_step(rows)` sees the
    rows after every new token. Returns one `Generated` per prompt, and with
    `keep_logits` also the [steps, B, V] logits each token was sampled from.
    """
    if stop_strings and decode is None:
      raise ValueError('stop strings need decode(ids) -> text')
    prompt_len, total_len = self.shapes(max(len(p) for p in prompts), max_new_tokens)
    prompts_BxP, lengths_B, seen_BxV = self.padded_prompts(prompts, prompt_len)
    row_ids = np.arange(len(prompts)) if row_ids is None else np.asarray(row_ids)
    keys_B = self._put(_row_keys(seed, row_ids))
    logits_BxV, tokens_B, state = self._start(self.params, self._put(prompts_BxP),
                                              self._put(lengths_B), self._put(seen_BxV),
                                              keys_B, total_len=total_len)
    seen = self._put(seen_BxV)
    rows = [Generated([], '' if decode else None, 'length') for _ in prompts]
    done = np.zeros(len(prompts), bool)
    stops, all_logits = set(int(t) for t in stop_tokens), []
    for i in range(max_new_tokens):
      if keep_logits:
        all_logits.append(np.asarray(logits_BxV))
      for b, token in enumerate(np.asarray(tokens_B).tolist()):
        if not done[b]:
          done[b] = _extend(rows[b], token, stops, stop_strings, decode)
      if on_step is not None:
        on_step(rows)
      if done.all() or i == max_new_tokens - 1:
        break
      logits_BxV, tokens_B, state, seen = self._next(self.params, state, tokens_B, seen,
                                                     keys_B, jnp.int32(i + 1))
    return (rows, np.stack(all_logits)) if keep_logits else rows


def _extend(row: Generated, token: int, stops: set[int], stop_strings, decode) -> bool:
  """Adds `token` to `row`; whether the row has stopped."""
  if token in stops:
    row.finish = 'stop_token'
    return True
  row.tokens.append(token)
  if decode is None:
    return False
  row.text = decode(row.tokens)
  cuts = [row.text.find(s) for s in stop_strings if s in row.text]
  if cuts:
    row.text, row.finish = row.text[:min(cuts)], 'stop_string'
    return True
  return False
