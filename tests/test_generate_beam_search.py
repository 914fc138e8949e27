"""Beam search against exhaustive search and greedy decoding."""

import itertools

import numpy as np
import pytest

from lm_jax.generate.beam_search import beam_search
from lm_jax.generate.sampling import SampleConfig
from tests.test_generate_decoding import PROMPTS, VOCAB, _generator, _model


def test_one_beam_is_greedy():
  gen = _generator('gpt', SampleConfig(temperature=0.0))
  greedy = [r.tokens for r in gen.generate(PROMPTS, 4)]
  assert [t for t, _ in beam_search(gen, PROMPTS, 4, num_beams=1)] == greedy


def test_as_many_beams_as_tokens_finds_the_best_two_token_continuation():
  forward, _, params = _model('gpt')
  gen = _generator('gpt', SampleConfig(temperature=0.0))
  prompt = PROMPTS[0]
  (tokens, score), = beam_search(gen, [prompt], 2, num_beams=VOCAB, length_penalty=0.0)
  # Every continuation a, b: log p(a | prompt) + log p(b | prompt, a), from full passes.
  seqs = np.array([prompt + [a, 0] for a in range(VOCAB)], np.int32)
  padded = np.zeros((VOCAB, 24), np.int32)
  padded[:, :seqs.shape[1]] = seqs
  logits = np.asarray(forward(params, padded), np.float64)[:, :, :VOCAB]
  logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
      - logits.max(-1, keepdims=True)
  n = len(prompt)
  total = {(a, b): logp[a, n - 1, a] + logp[a, n, b]
           for a, b in itertools.product(range(VOCAB), repeat=2)}
  best = max(total, key=total.get)
  assert tuple(tokens) == best
  assert abs(score - total[best]) < 1e-4  # length_penalty 0: the plain sum


def test_a_stop_string_finishes_a_hypothesis_with_its_tokens():
  """Stop string = the text of the likeliest first token a*: with length_penalty 0 the
  hypothesis [a*] (finished at once, its token kept) beats every two-token continuation,
  whose score adds a log-probability <= 0; without the stop string the best is 2 tokens."""
  forward, _, params = _model('gpt')
  gen = _generator('gpt', SampleConfig(temperature=0.0))
  prompt = PROMPTS[0]
  decode = lambda ids: ''.join(chr(0x100 + i) for i in ids)  # one character per token
  padded = np.zeros((1, 24), np.int32)
  padded[0, :len(prompt)] = prompt
  logits = np.asarray(forward(params, padded), np.float64)[0, len(prompt) - 1, :VOCAB]
  logp = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
  first = int(np.argmax(logp))
  (free, _), = beam_search(gen, [prompt], 2, num_beams=4, length_penalty=0.0)
  assert len(free) == 2
  (tokens, score), = beam_search(gen, [prompt], 2, num_beams=4, length_penalty=0.0,
                                 stop_strings=[decode([first])], decode=decode)
  assert tokens == [first]
  assert abs(score - logp[first]) < 1e-4
  with pytest.raises(ValueError, match='stop strings need decode'):
    beam_search(gen, [prompt], 2, num_beams=4, stop_strings=['x'])
