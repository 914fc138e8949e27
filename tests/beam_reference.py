"""The exhaustive answer beam search with as many beams as tokens must find in 2 steps."""

import itertools

import numpy as np


def best_two_token_continuation(forward, params, prompt, vocab: int, row_len: int):
  """((a, b), log p(a | prompt) + log p(b | prompt, a)) maximising the sum, from one full
  forward pass per first token a (rows right-padded to `row_len`), in float64."""
  padded = np.zeros((vocab, row_len), np.int32)
  padded[:, :len(prompt) + 1] = [list(prompt) + [a] for a in range(vocab)]
  logits = np.asarray(forward(params, padded), np.float64)[:, :, :vocab]
  top = logits.max(-1, keepdims=True)
  logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
  n = len(prompt)
  total = {(a, b): logp[a, n - 1, a] + logp[a, n, b]
           for a, b in itertools.product(range(vocab), repeat=2)}
  best = max(total, key=total.get)
  return best, total[best]
