"""References for the decoding tests: a small model with perturbed params, and the exhaustive
answer beam search with as many beams as tokens must find in 2 steps."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.models.registry import get_family


def perturbed_model(model_cfg, vocab: int):
  """(jitted forward(params, tokens), the family's model config, params): flax's init plus
  0.3 x N(0, 1) noise (nonzero biases; larger weights so the tokens vary)."""
  module, cfg = get_family(model_cfg.family).build(model_cfg, vocab)
  params = nn.meta.unbox(module.init(jax.random.PRNGKey(1),
                                     jnp.zeros((1, 8), jnp.int32))['params'])
  noise = np.random.default_rng(2)
  params = jax.tree.map(lambda p: p + 0.3 * noise.standard_normal(p.shape).astype(np.float32),
                        params)
  forward = jax.jit(lambda p, x: module.apply({'params': p}, x))
  return forward, cfg, params


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
