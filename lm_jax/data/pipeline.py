"""The input pipeline: corpus -> cached tokens -> packed windows -> grain batches.

Split (nanoGPT's rule): the first (1 - val_fraction) of the token stream
trains, the tail validates. Packing: each split is cut into non-overlapping
windows of seq_len + 1 tokens; inputs = w[:-1], targets = w[1:].

Train order: grain shuffles window indices (a fresh permutation every epoch)
and batches `global_batch_size` of them; a process reads only the `rows` of
each global batch that its devices hold (the caller derives them from the
batch sharding: a share, all of them, or a non-contiguous set), so the global
batch does not depend on the process count or the mesh. The iterator's state
is one integer (the next global batch index), so `get_state()` / `set_state()`
resume exactly, and a checkpoint written with P processes is meaningful with
any other P.
"""

import dataclasses
import functools
import math
import os
from typing import Any, Callable, Sequence

from absl import logging
import grain
import numpy as np

from lm_jax.data import sources
from lm_jax.data import token_cache
from lm_jax.data import tokenizers

Batch = dict[str, np.ndarray]  # inputs, targets: int32 [b, L]; weights: float32 [b, L]


class Windows:
  """Random access to the non-overlapping (seq_len + 1)-token windows of a token array."""

  def __init__(self, tokens_T: np.ndarray, seq_len: int):
    self.tokens_T = tokens_T
    self.window = seq_len + 1
    self.num_windows = len(tokens_T) // self.window  # the ragged tail is dropped

  def __len__(self) -> int:
    return self.num_windows

  def __getitem__(self, index: int) -> np.ndarray:
    if not 0 <= index < self.num_windows:
      raise IndexError(f'window {index} out of range [0, {self.num_windows})')
    start = int(index) * self.window
    # Copies out of the memmap (and widens uint16 -> int32) one window at a time.
    return np.asarray(self.tokens_T[start:start + self.window], dtype=np.int32)


def split_point(num_tokens: int, val_fraction: float) -> int:
  """Returns n_train: tokens[:n_train] train, tokens[n_train:] validate."""
  if not 0.0 <= val_fraction < 1.0:  # 0: no validation split (evaluation off)
    raise ValueError(f'data.val_fraction must be in [0, 1); got {val_fraction}')
  return int(num_tokens * (1.0 - val_fraction))


def _rows_to_batch(windows: list[np.ndarray]) -> Batch:
  """Stacks windows ([b, L+1]) into an (inputs, targets, weights) batch."""
  windows_BxW = np.stack(windows)
  return {
      'inputs': np.ascontiguousarray(windows_BxW[:, :-1]),
      'targets': np.ascontiguousarray(windows_BxW[:, 1:]),
      'weights': np.ones((len(windows), windows_BxW.shape[1] - 1), dtype=np.float32),
  }


def _read_rows(windows: 'Windows', indices: list[int], rows: tuple[int, ...]) -> Batch:
  """Reads windows indices[r] for r in rows (this process's rows of a global batch)."""
  return _rows_to_batch([windows[indices[r]] for r in rows])


def _checked_rows(rows: Sequence[int] | None, global_batch_size: int) -> tuple[int, ...]:
  """`rows` (None: all) as increasing, distinct row indices in [0, global_batch_size)."""
  if rows is None:
    return tuple(range(global_batch_size))
  rows = tuple(int(r) for r in rows)
  if not rows or any(b <= a for a, b in zip(rows, rows[1:])) \
      or not 0 <= rows[0] <= rows[-1] < global_batch_size:
    raise ValueError(f'rows must be increasing, distinct indices in [0, {global_batch_size}) '
                     f'(a global batch of {global_batch_size}); got {list(rows)}')
  return rows


def _shuffle_seed(seed: int) -> int:
  """Spreads `seed` over 32 bits."""
  # grain reshuffles epoch e with seed + e, so seeds 0 and 1 would replay each
  # other's epochs one epoch apart; hashing the seed first avoids that.
  return int(np.random.SeedSequence(seed).generate_state(1)[0])


def train_dataset(tokens_T: np.ndarray, seq_len: int, global_batch_size: int, seed: int,
                  rows: Sequence[int] | None = None) -> grain.MapDataset:
  """Returns the infinite, shuffled (reshuffled each epoch) dataset of this process's batches:
  rows `rows` (increasing global row indices; None: all) of each global batch."""
  rows = _checked_rows(rows, global_batch_size)
  windows = Windows(tokens_T, seq_len)
  if len(windows) < global_batch_size:
    raise ValueError(
        f'train split has {len(windows)} windows of seq_len+1={seq_len + 1} tokens '
        f'({len(tokens_T)} tokens), fewer than one global batch ({global_batch_size}); '
        'use more data (data.max_bytes), a smaller data.seq_len or batch size')
  # Window *indices* are shuffled and batched; a process reads only its rows.
  ds = grain.MapDataset.range(len(windows))
  # shuffle before repeat: index i of epoch e maps through permutation seed+e.
  ds = ds.shuffle(seed=_shuffle_seed(seed)).repeat()
  return ds.batch(global_batch_size, drop_remainder=True,
                  batch_fn=functools.partial(_read_rows, windows, rows=rows))


def train_iterator(dataset: grain.MapDataset, prefetch: int) -> grain.DatasetIterator:
  """Returns a checkpointable iterator over `dataset`, `prefetch` batches read ahead by a thread."""
  # A thread (not processes): batches are memmap slices, cheap and GIL-light;
  # and the prefetching iterator's state is still just the next batch index.
  read_options = grain.ReadOptions(num_threads=1 if prefetch > 0 else 0,
                                   prefetch_buffer_size=max(prefetch, 0))
  return iter(dataset.to_iter_dataset(read_options))


def val_batches(tokens_T: np.ndarray, seq_len: int, global_batch_size: int, num_batches: int,
                rows: Sequence[int] | None = None) -> list[Batch]:
  """Returns rows `rows` (None: all) of the first min(num_batches, available) validation
  batches, in order."""
  rows = _checked_rows(rows, global_batch_size)
  windows = Windows(tokens_T, seq_len)
  available = len(windows) // global_batch_size
  if available < 1:
    raise ValueError(
        f'validation split has {len(windows)} windows of seq_len+1={seq_len + 1} tokens '
        f'({len(tokens_T)} tokens), fewer than one global batch ({global_batch_size}); '
        'use more data (data.max_bytes), a larger data.val_fraction, '
        'a smaller data.seq_len or batch size')
  if num_batches > available:
    logging.warning('data: asked for %d validation batches, the split holds %d',
                    num_batches, available)
  return [_rows_to_batch([windows[k * global_batch_size + r] for r in rows])
          for k in range(min(num_batches, available))]


@dataclasses.dataclass
class Data:
  """Everything the loop needs from the data side."""
  tokenizer: tokenizers.Tokenizer
  train_iter: grain.DatasetIterator      # yields this process's rows; get_state/set_state
  val_batches: Callable[[int], list[Batch]]  # num_batches -> the first val batches
  bytes_per_token: float                 # UTF-8 bytes per token of the val split (train if none)
  train_tokens: int
  val_tokens: int
  train_bytes_per_token: float = math.nan
  tokens_path: str = ''                  # the memory-mapped cache file


def default_cache_dir(run_dir: str) -> str:
  """Returns <run_dir>/../.cache/tokens: shared by the runs next to each other."""
  return os.path.join(os.path.dirname(os.path.abspath(run_dir)), '.cache', 'tokens')


def _load_run_tokenizer(tokenizer_dir: str, kind: str) -> tokenizers.Tokenizer:
  tokenizer = tokenizers.load_tokenizer(tokenizer_dir)
  if tokenizer.kind != kind:
    raise ValueError(f'{tokenizer_dir} holds a {tokenizer.kind!r} tokenizer but '
                     f'data.tokenizer={kind!r}; a resumed run must keep its tokenizer')
  return tokenizer


def build_data(data_cfg: Any, *, global_batch_size: int, run_dir: str,
               process_index: int = 0, rows: Sequence[int] | None = None) -> Data:
  """Builds tokenizer, train iterator and validation batches from the `data` config;
  the batches hold rows `rows` (increasing global row indices; None: all) of each
  global batch."""
  cache_dir = data_cfg.cache_dir or default_cache_dir(run_dir)
  files = sources.corpus_files(data_cfg.source, data_cfg.file_glob, data_cfg.max_bytes)
  fingerprint = token_cache.corpus_fingerprint(files, data_cfg.max_bytes)

  @functools.cache
  def read_text() -> str:  # read lazily: a warm cache never touches the corpus
    text, _ = sources.read_corpus(data_cfg.source, data_cfg.file_glob, data_cfg.max_bytes)
    return text

  # A resumed run keeps the tokenizer it started with, whatever the cache holds.
  tokenizer_dir = os.path.join(run_dir, 'tokenizer')
  if os.path.exists(os.path.join(tokenizer_dir, tokenizers.META_FILE)):
    tokenizer = _load_run_tokenizer(tokenizer_dir, data_cfg.tokenizer)
  else:
    tokenizer = token_cache.cached_tokenizer(
        cache_dir, data_cfg.tokenizer, data_cfg.bpe_vocab_size, fingerprint, read_text)
    if process_index == 0:
      token_cache.save_tokenizer_atomic(tokenizer, tokenizer_dir)

  tokens_T = token_cache.cached_tokens(cache_dir, tokenizer, fingerprint, read_text)
  n_train = split_point(len(tokens_T), data_cfg.val_fraction)
  train_T, val_T = tokens_T[:n_train], tokens_T[n_train:]
  path = token_cache.tokens_path(cache_dir, tokenizer, fingerprint)
  train_bytes, val_bytes = token_cache.split_bytes(path, tokens_T, tokenizer, n_train)

  dataset = train_dataset(train_T, data_cfg.seq_len, global_batch_size, data_cfg.seed, rows)
  val_fn = functools.partial(val_batches, val_T, data_cfg.seq_len, global_batch_size,
                             rows=rows)
  if data_cfg.val_fraction > 0:
    val_fn(0)  # fail now, not at the first eval, if val holds less than one batch
  logging.info('data: %d files, %d tokens (train %d, val %d), vocab %d (%s)',
               len(files), len(tokens_T), len(train_T), len(val_T),
               tokenizer.vocab_size, tokenizer.kind)
  return Data(
      tokenizer=tokenizer,
      train_iter=train_iterator(dataset, data_cfg.prefetch),
      val_batches=val_fn,
      # Without a validation split, bits per byte can only refer to train text.
      bytes_per_token=(val_bytes / len(val_T) if len(val_T)
                       else train_bytes / max(len(train_T), 1)),
      train_tokens=len(train_T),
      val_tokens=len(val_T),
      train_bytes_per_token=train_bytes / max(len(train_T), 1),
      tokens_path=path,
  )
