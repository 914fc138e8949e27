"""Masked language modelling (BERT): [CLS] A [SEP] (B [SEP]) with masked tokens to predict.

Each window of text tokens becomes one row. Without next-sentence prediction
the row is [CLS] w [SEP] (seq_len - 2 text tokens). With it (data.nsp) the
window of seq_len - 3 tokens is cut at a random point into A and the rest;
half the rows keep the rest as B (label 0, "B follows A"), the others take
B from the same positions of another window of the split (label 1), so a
row is always exactly seq_len tokens and needs no padding.

Masking as BERT's create_pretraining_data: round(mlm_probability * n) of the
n text tokens (at least 1) are selected uniformly without replacement; each
selected token becomes [MASK] with probability 0.8, a uniformly random text
token with 0.1, and stays itself with 0.1. Targets are the original tokens;
weights are 1 exactly at the selected positions. Specials are never selected.

Every random choice of a row comes from numpy's generator seeded by
(ctx.seed, global row id): the same row gets the same batch whatever the
process count, and on resume.
"""

import numpy as np

from lm_jax.data.tasks.registry import Task

MASK_FRACTION, RANDOM_FRACTION = 0.8, 0.1  # of the selected tokens; the rest are kept
ROLES = ('cls', 'sep', 'mask', 'pad')
IS_NEXT, NOT_NEXT = 0, 1  # next-sentence labels, as Hugging Face's BertForPreTraining


def _num_specials(data_cfg) -> int:
  return 3 if data_cfg.nsp else 2


def window_len(seq_len: int, data_cfg) -> int:
  """Text tokens per row: seq_len minus [CLS] and one [SEP] per sentence."""
  return seq_len - _num_specials(data_cfg)


def batch_spec(batch_size: int, seq_len: int, data_cfg) -> dict:
  """inputs, targets, token_types: int32 [B, L]; weights: float32 [B, L]; nsp_labels int32 [B]."""
  shape = (batch_size, seq_len)
  spec = {'inputs': (shape, np.int32), 'targets': (shape, np.int32),
          'weights': (shape, np.float32), 'token_types': (shape, np.int32)}
  if data_cfg.nsp:
    spec['nsp_labels'] = ((batch_size,), np.int32)
  return spec


def row_rng(seed: int, row_id: int) -> np.random.Generator:
  """The generator of one global row: every random choice of that row comes from it."""
  return np.random.default_rng(np.random.SeedSequence([int(seed), int(row_id)]))


def _sentence_pair(window_W, rng, windows):
  """(text tokens A + B, len(A), label): B follows A, or comes from another window."""
  W = len(window_W)
  split = int(rng.integers(1, W))
  if rng.random() < 0.5:
    return window_W, split, IS_NEXT
  index = int(rng.integers(len(windows)))
  other_W = windows[index]
  if np.array_equal(other_W, window_W):  # drew its own window: take the next one
    other_W = windows[(index + 1) % len(windows)]
  return np.concatenate([window_W[:split], other_W[split:]]), split, NOT_NEXT


def _mask(inputs_L, text_L, rng, probability: float, specials, text_vocab_size: int):
  """(masked inputs, weights): BERT's 80/10/10 replacement of the selected text positions."""
  candidates = np.flatnonzero(text_L)
  count = max(1, int(round(probability * len(candidates))))
  chosen = rng.choice(candidates, size=count, replace=False)
  action = rng.random(count)
  random_ids = rng.integers(0, text_vocab_size, size=count)
  masked_L = inputs_L.copy()
  is_mask = action < MASK_FRACTION
  is_random = (action >= MASK_FRACTION) & (action < MASK_FRACTION + RANDOM_FRACTION)
  masked_L[chosen[is_mask]] = specials['mask']
  masked_L[chosen[is_random]] = random_ids[is_random]
  weights_L = np.zeros(len(inputs_L), np.float32)
  weights_L[chosen] = 1.0
  return masked_L, weights_L


def make_row(window_W, row_id: int, ctx) -> dict:
  """One row's arrays (see the module doc)."""
  cfg, s = ctx.data_cfg, ctx.specials
  rng = row_rng(ctx.seed, row_id)
  window_W = np.asarray(window_W, np.int32)
  if cfg.nsp:
    text_W, split, label = _sentence_pair(window_W, rng, ctx.windows)
    tokens_L = np.concatenate([[s['cls']], text_W[:split], [s['sep']], text_W[split:],
                               [s['sep']]]).astype(np.int32)
    types_L = np.zeros(len(tokens_L), np.int32)
    types_L[split + 2:] = 1  # B and its [SEP]
  else:
    tokens_L = np.concatenate([[s['cls']], window_W, [s['sep']]]).astype(np.int32)
    types_L, label = np.zeros(len(tokens_L), np.int32), None
  text_L = ~np.isin(tokens_L, [s['cls'], s['sep']])
  inputs_L, weights_L = _mask(tokens_L, text_L, rng, cfg.mlm_probability, s,
                              ctx.text_vocab_size)
  row = {'inputs': inputs_L, 'targets': tokens_L, 'weights': weights_L, 'token_types': types_L}
  if label is not None:
    row['nsp_labels'] = np.int32(label)
  return row


def make_batch(windows_BxW: np.ndarray, row_ids_B, ctx) -> dict:
  """Stacks make_row over the rows (row_ids_B: their global ids)."""
  rows = [make_row(w, r, ctx) for w, r in zip(windows_BxW, row_ids_B)]
  return {k: np.stack([row[k] for row in rows]) for k in rows[0]}


TASK = Task(name='mlm', description='masked LM (BERT: 15% selected, 80/10/10), optional NSP',
            window_len=window_len, batch_spec=batch_spec, make_batch=make_batch,
            special_tokens=lambda data_cfg: ROLES,
            config_keys=('mlm_probability', 'nsp'))
