"""Beam search over any family's `Decoding` (prefill, step, select_rows), with a length penalty.

Each prompt keeps `num_beams` rows of the decoding state. Every step the
2 * num_beams best continuations by summed log-probability are looked at in
order: one ending in a stop token, or whose text (`decode`) then holds a stop
string, becomes a finished hypothesis scored sum_logp / new_length **
length_penalty (the stop token counted; the tokens completing a stop string are
kept, the caller cuts the text there), the others fill
the beams, whose state rows `select_rows` gathers. A prompt is done once it has
num_beams finished hypotheses (Hugging Face's early_stopping=True); at
max_new_tokens the live beams are finished as they are.
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.generate.decode_loop import Generator


def beam_search(gen: Generator, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                num_beams: int = 4, length_penalty: float = 1.0,
                stop_tokens: Sequence[int] = (), stop_strings: Sequence[str] = (),
                decode: Callable[[list[int]], str] | None = None
                ) -> list[tuple[list[int], float]]:
  """(best new tokens without the stop token, its score) per prompt; `gen` gives the model,
  its decoding and the length buckets (its sampler is not used); `decode(ids) -> text`
  (needed for stop strings) gives a hypothesis' text."""
  if stop_strings and decode is None:
    raise ValueError('stop strings need decode(ids) -> text')
  d, cfg, params = gen.decoding, gen.model_cfg, gen.params
  B, K, stops = len(prompts), num_beams, set(int(t) for t in stop_tokens)
  prompt_len, total_len = gen.shapes(max(len(p) for p in prompts), max_new_tokens)
  repeated = [p for p in prompts for _ in range(K)]
  prompts_BxP, lengths_B, _ = gen.padded_prompts(repeated, prompt_len)
  logits, state = jax.jit(d.prefill, static_argnums=(0, 4))(
      cfg, params, jnp.asarray(prompts_BxP), jnp.asarray(lengths_B), total_len)
  step = jax.jit(d.step, static_argnums=0, donate_argnums=2)
  select = jax.jit(d.select_rows, static_argnums=0)
  scores_BxK = np.full((B, K), -np.inf)
  scores_BxK[:, 0] = 0.0  # the K copies of a prompt start as one beam
  beams = [[[] for _ in range(K)] for _ in range(B)]
  finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
  for t in range(max_new_tokens):
    logp_BxKxV = np.asarray(jax.nn.log_softmax(logits.astype(jnp.float32)), np.float64)
    logp_BxKxV = logp_BxKxV.reshape(B, K, -1)[:, :, :cfg.vocab_size]
    V = logp_BxKxV.shape[-1]
    cand_BxKV = (scores_BxK[:, :, None] + logp_BxKxV).reshape(B, -1)
    rows, tokens = np.zeros(B * K, np.int32), np.zeros(B * K, np.int32)
    new_scores, new_beams = np.full((B, K), -np.inf), [[None] * K for _ in range(B)]
    for b in range(B):
      if len(finished[b]) >= K:  # done: keep its rows stepping, nothing is read from them
        rows[b * K:(b + 1) * K] = np.arange(b * K, (b + 1) * K)
        new_beams[b] = beams[b]
        continue
      filled = 0
      for rank, flat in enumerate(np.argsort(-cand_BxKV[b], kind='stable')[:2 * K]):
        beam, token = divmod(int(flat), V)
        if not np.isfinite(cand_BxKV[b, flat]):
          break
        extended = beams[b][beam] + [token]
        if token in stops or (stop_strings and
                              any(x in decode(extended) for x in stop_strings)):
          if rank < K:
            finished[b].append((cand_BxKV[b, flat] / (t + 1) ** length_penalty,
                                beams[b][beam] if token in stops else extended))
          continue
        rows[b * K + filled], tokens[b * K + filled] = b * K + beam, token
        new_scores[b, filled], new_beams[b][filled] = cand_BxKV[b, flat], beams[b][beam] + [token]
        filled += 1
        if filled == K:
          break
      for k in range(filled, K):  # fewer live candidates than beams: dead copies
        rows[b * K + k], new_beams[b][k] = rows[b * K], []
    scores_BxK, beams = new_scores, new_beams
    if all(len(f) >= K for f in finished) or t == max_new_tokens - 1:
      break
    state = select(cfg, state, jnp.asarray(rows))
    logits, state = step(cfg, params, state, jnp.asarray(tokens))
  results = []
  for b in range(B):
    pool = list(finished[b])
    if len(pool) < K:
      pool += [(scores_BxK[b, k] / max(len(beams[b][k]), 1) ** length_penalty, beams[b][k])
               for k in range(K) if np.isfinite(scores_BxK[b, k])]
    score, tokens = max(pool, key=lambda p: p[0])
    results.append((list(tokens), float(score)))
  return results
