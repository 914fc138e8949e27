"""Seq2seq on (input, target) text pairs from a JSONL file (data.seq2seq_path).

Each line is a JSON object; data.seq2seq_input_field and
data.seq2seq_target_field name its two strings. The pairs are split in file
order like the token stream (the first 1 - val_fraction - test_fraction
train, then validation, then test). Each pair becomes one row of
seq_len + target_len ids (-1 past its end): the input, cut to seq_len - 1
tokens, then EOS; the target, cut to target_len - 1, then EOS.
data.target_len 0 means seq_len.
"""

import json

import numpy as np

from lm_jax.data.tasks import encdec_batch
from lm_jax.data.tasks.registry import Task
from lm_jax.errors import ConfigError

_SPLITS = ('train', 'val', 'test')


def target_len(seq_len: int, data_cfg) -> int:
  """data.target_len, or seq_len when it is 0."""
  return data_cfg.target_len or seq_len


def window_len(seq_len: int, data_cfg) -> int:
  """One row per pair: the encoder's seq_len ids, then the decoder's target_len."""
  return seq_len + target_len(seq_len, data_cfg)


def batch_spec(batch_size: int, seq_len: int, data_cfg) -> dict:
  return encdec_batch.batch_spec(batch_size, seq_len, target_len(seq_len, data_cfg))


def read_pairs(path: str, input_field: str, target_field: str) -> list[tuple[str, str]]:
  """The (input, target) strings of every line of a JSONL file; ConfigError naming the line."""
  if not path:
    raise ConfigError("config.data.seq2seq_path='': the seq2seq task reads (input, target) "
                      'pairs from a JSONL file; give its path')
  pairs = []
  try:
    with open(path, encoding='utf-8') as f:
      for number, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          row = json.loads(line)
          pair = (row[input_field], row[target_field])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
          raise ConfigError(
              f'config.data.seq2seq_path={path!r}, line {number}: expected a JSON object with '
              f'string fields {input_field!r} and {target_field!r} (data.seq2seq_input_field, '
              f'data.seq2seq_target_field); {type(e).__name__}: {e}') from e
        if not all(isinstance(s, str) for s in pair):
          raise ConfigError(f'config.data.seq2seq_path={path!r}, line {number}: fields '
                            f'{input_field!r} and {target_field!r} must be strings')
        pairs.append(pair)
  except OSError as e:
    raise ConfigError(f'config.data.seq2seq_path={path!r}: cannot read it ({e})') from e
  return pairs


def split_of(pairs: list, data_cfg, split: str) -> list:
  """The pairs of `split`, in file order (train, then val, then test)."""
  n = len(pairs)
  train_end = int(n * (1.0 - data_cfg.val_fraction - data_cfg.test_fraction))
  val_end = int(n * (1.0 - data_cfg.test_fraction))
  bounds = {'train': (0, train_end), 'val': (train_end, val_end), 'test': (val_end, n)}
  start, end = bounds[split]
  return pairs[start:end]


def examples(data_cfg, tokenizer, specials: dict, split: str) -> np.ndarray:
  """[N, seq_len + target_len] int32 rows of the split's pairs, -1 past each part's end."""
  if split not in _SPLITS:
    raise ValueError(f'split {split!r}: expected one of {_SPLITS}')
  L, T = data_cfg.seq_len, target_len(data_cfg.seq_len, data_cfg)
  pairs = split_of(read_pairs(data_cfg.seq2seq_path, data_cfg.seq2seq_input_field,
                              data_cfg.seq2seq_target_field), data_cfg, split)
  rows = np.full((len(pairs), L + T), -1, np.int32)
  eos = specials['eos']
  for i, (source, target) in enumerate(pairs):
    enc = np.append(np.asarray(tokenizer.encode(source))[:L - 1], eos)
    dec = np.append(np.asarray(tokenizer.encode(target))[:T - 1], eos)
    rows[i, :len(enc)] = enc
    rows[i, L:L + len(dec)] = dec
  return rows


def make_batch(rows_BxW: np.ndarray, row_ids_B=None, ctx=None) -> dict:
  """Cuts each row into its encoder part and its targets and pads them."""
  del row_ids_B
  L = ctx.data_cfg.seq_len
  rows_BxW = np.asarray(rows_BxW)
  inputs = [row[:L][row[:L] >= 0] for row in rows_BxW]
  targets = [row[L:][row[L:] >= 0] for row in rows_BxW]
  return encdec_batch.pad_pairs(inputs, targets, L, rows_BxW.shape[1] - L, ctx.specials['pad'])


TASK = Task(name='seq2seq', description='(input, target) pairs from a JSONL file',
            window_len=window_len, batch_spec=batch_spec, make_batch=make_batch,
            special_tokens=lambda data_cfg: ('eos', 'pad'),
            config_keys=('seq2seq_path', 'seq2seq_input_field', 'seq2seq_target_field',
                         'target_len'),
            examples=examples)
