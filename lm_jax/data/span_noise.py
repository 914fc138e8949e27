"""T5's span corruption (Raffel et al. 2020, section 3.1.4), in NumPy.

A row of n raw tokens gets round(n * noise_density) noise tokens in
round(noise / mean_noise_span_length) spans (`span_counts`), placed by T5's
`random_spans_noise_mask`: the noise tokens and the kept tokens are each cut
into that many non-empty runs at random, and the runs alternate, kept first.
The encoder sees the kept tokens with each noise span replaced by one
sentinel; the decoder predicts each sentinel followed by the span it hides
(`corrupt`). Both end with EOS.
"""

import numpy as np


def span_counts(length: int, noise_density: float, mean_noise_span_length: float):
  """(noise tokens, noise spans) of a row of `length` raw tokens (T5's rounding and clamps)."""
  length = max(length, 2)
  num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
  num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
  return num_noise, num_spans


def corrupted_lengths(length: int, noise_density: float, mean_noise_span_length: float):
  """(encoder length, decoder length) of a corrupted `length`-token row, EOS included."""
  num_noise, num_spans = span_counts(length, noise_density, mean_noise_span_length)
  return length - num_noise + num_spans + 1, num_noise + num_spans + 1


def raw_length(inputs_length: int, noise_density: float, mean_noise_span_length: float) -> int:
  """The most raw tokens whose corrupted encoder input fits `inputs_length` (T5's
  random_spans_helper)."""
  n = max(inputs_length - 1, 2)
  while corrupted_lengths(n + 1, noise_density, mean_noise_span_length)[0] <= inputs_length:
    n += 1
  while n > 2 and corrupted_lengths(n, noise_density, mean_noise_span_length)[0] > inputs_length:
    n -= 1
  return n


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator):
  """Lengths of a uniformly random cut of num_items into num_segments non-empty runs."""
  first_in_segment = np.concatenate(
      [[0], rng.permutation(np.arange(num_items - 1) < num_segments - 1)]).astype(np.int64)
  return np.bincount(np.cumsum(first_in_segment), minlength=num_segments)


def random_spans_noise_mask(length: int, noise_density: float, mean_noise_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
  """[length] bool, True on noise: alternating kept / noise runs, kept first, noise last."""
  num_noise, num_spans = span_counts(length, noise_density, mean_noise_span_length)
  n = max(length, 2)
  noise_lengths = _random_segmentation(num_noise, num_spans, rng)
  kept_lengths = _random_segmentation(n - num_noise, num_spans, rng)
  interleaved = np.stack([kept_lengths, noise_lengths], axis=1).reshape(-1)
  span_index = np.repeat(np.arange(2 * num_spans), interleaved)
  return (span_index % 2 == 1)[:length]


def _runs_to_sentinels(tokens_N, is_run_N, sentinel_ids, eos_id: int):
  """tokens_N with each run of is_run_N replaced by the next sentinel, then EOS (T5's
  noise_span_to_unique_sentinel)."""
  starts_N = is_run_N & ~np.concatenate([[False], is_run_N[:-1]])
  run_k_N = np.maximum(np.cumsum(starts_N) - 1, 0)
  out_N = np.where(starts_N, np.asarray(sentinel_ids)[run_k_N], tokens_N)
  return np.concatenate([out_N[~is_run_N | starts_N], [eos_id]]).astype(np.int32)


def corrupt(tokens_N: np.ndarray, noise_N: np.ndarray, sentinel_ids, eos_id: int):
  """(encoder tokens, decoder targets): noise spans -> sentinels in the first, kept runs
  -> sentinels in the second; with a kept-first mask sentinel k precedes noise span k
  in the targets and stands for it in the inputs."""
  tokens_N, noise_N = np.asarray(tokens_N), np.asarray(noise_N, bool)
  return (_runs_to_sentinels(tokens_N, noise_N, sentinel_ids, eos_id),
          _runs_to_sentinels(tokens_N, ~noise_N, sentinel_ids, eos_id))
