"""The input pipeline: corpus -> cached tokens -> packed windows -> grain batches.

Split: the token stream is cut into three contiguous parts, in order: train,
validation (val_fraction of the stream) and test (test_fraction, the tail).
With test_fraction 0 this is nanoGPT's rule (the first 90% train, the last 10%
validate). Validation drives decisions during training; training never reads
the test part, which only `lm-jax eval --split test` does. Packing: each split
is cut into non-overlapping windows of seq_len + 1 tokens; inputs = w[:-1],
targets = w[1:].

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
import os
from typing import Any, Callable, Sequence

from absl import logging
import grain
import numpy as np

from lm_jax.data import boundaries
from lm_jax.data import fingerprint
from lm_jax.data import mixture
from lm_jax.data import prepared_corpus
from lm_jax.data import run_tokenizer
from lm_jax.data import sources
from lm_jax.data import special_tokens
from lm_jax.data import token_cache
from lm_jax.data import tokenizers
from lm_jax.data.tasks import Task, TaskContext, get_task
from lm_jax.data.token_stream import TokenStream

Batch = dict[str, np.ndarray]  # the task's arrays, each [b, ...] (lm: inputs, targets, weights)


@dataclasses.dataclass(frozen=True)
class BatchMaker:
  """A task bound to its context: how long a window is, and windows -> batch."""
  task: Task
  ctx: TaskContext

  def window_len(self, seq_len: int) -> int:
    return self.task.window_len(seq_len, self.ctx.data_cfg)

  def __call__(self, windows_BxW: np.ndarray, row_ids_B: np.ndarray) -> Batch:
    return self.task.make_batch(windows_BxW, row_ids_B, self.ctx)

  def over(self, windows: 'Windows') -> 'BatchMaker':
    """This maker with the split's windows in its context (tasks that read other rows)."""
    return dataclasses.replace(self, ctx=dataclasses.replace(self.ctx, windows=windows))


def next_token_maker() -> BatchMaker:
  """The `lm` task with no special tokens (the default of the functions below)."""
  return BatchMaker(get_task('lm'), TaskContext(data_cfg=None, specials={}, text_vocab_size=0))


class Windows:
  """Random access to the non-overlapping `window_len`-token windows of a token array."""

  def __init__(self, tokens_T: np.ndarray, window_len: int):
    self.tokens_T = tokens_T
    self.window = window_len
    self.num_windows = len(tokens_T) // self.window  # the ragged tail is dropped

  def __len__(self) -> int:
    return self.num_windows

  def __getitem__(self, index: int) -> np.ndarray:
    if not 0 <= index < self.num_windows:
      raise IndexError(f'window {index} out of range [0, {self.num_windows})')
    start = int(index) * self.window
    # Copies out of the memmap (and widens uint16 -> int32) one window at a time.
    return np.asarray(self.tokens_T[start:start + self.window], dtype=np.int32)


class ExampleRows:
  """A task's [N, W] example rows (e.g. seq2seq pairs), read like the windows of a stream."""

  def __init__(self, rows_NxW: np.ndarray):
    self.rows_NxW = rows_NxW
    self.window = rows_NxW.shape[1]
    self.num_windows = len(rows_NxW)

  def __len__(self) -> int:
    return self.num_windows

  def __getitem__(self, index: int) -> np.ndarray:
    return np.asarray(self.rows_NxW[int(index)], dtype=np.int32)


def windows_of(source: np.ndarray, window_len: int):
  """The windows of a 1-D token stream, or a task's 2-D example rows as they are."""
  return ExampleRows(source) if getattr(source, 'ndim', 1) == 2 else Windows(source, window_len)


def _num_tokens(source: np.ndarray) -> int:
  """Tokens of a stream, or the real ids (>= 0) of example rows."""
  return int(np.sum(source >= 0)) if getattr(source, 'ndim', 1) == 2 else len(source)


def split_bounds(num_tokens: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
  """Returns (train_end, val_end): [0, train_end) trains, then val up to val_end, then test."""
  if not 0.0 <= val_fraction < 1.0:  # 0: no validation split (evaluation off)
    raise ValueError(f'data.val_fraction must be in [0, 1); got {val_fraction}')
  if not 0.0 <= test_fraction < 1.0 - val_fraction:
    raise ValueError(f'data.test_fraction must be in [0, 1 - data.val_fraction) = '
                     f'[0, {1.0 - val_fraction:g}); got {test_fraction}')
  # With test_fraction 0 these are nanoGPT's int(n * 0.9) and n.
  return (int(num_tokens * (1.0 - val_fraction - test_fraction)),
          int(num_tokens * (1.0 - test_fraction)))


def _read_rows(windows: 'Windows', batch_index: int, indices, *, rows: tuple[int, ...],
               global_batch_size: int, make: BatchMaker) -> Batch:
  """The batch of windows indices[r] for r in rows (this process's rows of global batch
  `batch_index`), made by the task."""
  windows_BxW = np.stack([windows[indices[r]] for r in rows])
  row_ids_B = batch_index * global_batch_size + np.asarray(rows, np.int64)
  return make(windows_BxW, row_ids_B)


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
                  rows: Sequence[int] | None = None,
                  make: BatchMaker | None = None) -> grain.MapDataset:
  """Returns the infinite, shuffled (reshuffled each epoch) dataset of this process's batches:
  rows `rows` (increasing global row indices; None: all) of each global batch, made by
  `make` (default: next-token windows)."""
  rows = _checked_rows(rows, global_batch_size)
  make = make or next_token_maker()
  windows = windows_of(tokens_T, make.window_len(seq_len))
  make = make.over(windows)
  if len(windows) < global_batch_size:
    raise ValueError(
        f'train split has {len(windows)} windows of {windows.window} tokens '
        f'({len(tokens_T)} tokens), fewer than one global batch ({global_batch_size}); '
        'use more data (data.max_bytes), a smaller data.seq_len or batch size')
  # Window *indices* are shuffled and batched; a process reads only its rows.
  ds = grain.MapDataset.range(len(windows))
  # shuffle before repeat: index i of epoch e maps through permutation seed+e.
  ds = ds.shuffle(seed=_shuffle_seed(seed)).repeat()
  ds = ds.batch(global_batch_size, drop_remainder=True)  # [B] window indices per batch
  # The batch index is the row identity's first half (the iterator state is it too).
  return ds.map_with_index(functools.partial(
      _read_rows, windows, rows=rows, global_batch_size=global_batch_size, make=make))


def train_iterator(dataset: grain.MapDataset, prefetch: int) -> grain.DatasetIterator:
  """Returns a checkpointable iterator over `dataset`, `prefetch` batches read ahead by a thread."""
  # A thread (not processes): batches are memmap slices, cheap and GIL-light;
  # and the prefetching iterator's state is still just the next batch index.
  read_options = grain.ReadOptions(num_threads=1 if prefetch > 0 else 0,
                                   prefetch_buffer_size=max(prefetch, 0))
  return iter(dataset.to_iter_dataset(read_options))


_SPLIT_NAMES = {'val': 'validation', 'test': 'test'}


def val_batches(tokens_T: np.ndarray, seq_len: int, global_batch_size: int, num_batches: int,
                rows: Sequence[int] | None = None, split: str = 'val',
                make: BatchMaker | None = None) -> list[Batch]:
  """Returns rows `rows` (None: all) of the first min(num_batches, available) batches of
  a held-out split, in order (made by `make`, default next-token windows)."""
  rows = _checked_rows(rows, global_batch_size)
  make = make or next_token_maker()
  windows = windows_of(tokens_T, make.window_len(seq_len))
  make = make.over(windows)
  available = len(windows) // global_batch_size
  if available < 1:
    raise ValueError(
        f'{_SPLIT_NAMES[split]} split has {len(windows)} windows of {windows.window} '
        f'tokens ({len(tokens_T)} tokens), fewer than one global batch ({global_batch_size}); '
        f'use more data (data.max_bytes), a larger data.{split}_fraction, '
        'a smaller data.seq_len or batch size')
  if num_batches > available:
    logging.warning('data: asked for %d %s batches, the split holds %d',
                    num_batches, _SPLIT_NAMES[split], available)
  indices = np.arange(available * global_batch_size)
  return [_read_rows(windows, k, indices[k * global_batch_size:], rows=rows,
                     global_batch_size=global_batch_size, make=make)
          for k in range(min(num_batches, available))]


@dataclasses.dataclass
class Data:
  """Everything the loop needs from the data side."""
  tokenizer: tokenizers.Tokenizer
  vocab_size: int                        # ids the model embeds: text + the task's special tokens
  specials: dict                         # special token role -> id (lm_jax/data/special_tokens.py)
  train_iter: grain.DatasetIterator      # yields this process's rows; get_state/set_state
  val_batches: Callable[[int], list[Batch]]   # num_batches -> the first validation batches
  test_batches: Callable[[int], list[Batch]]  # num_batches -> the first test batches
  train_tokens: int
  val_tokens: int
  test_tokens: int
  fingerprint: dict                      # fingerprint.data_fingerprint: saved with checkpoints
  tokens_path: str = ''                  # the memory-mapped cache file (or prepared directory)


def default_cache_dir(run_dir: str) -> str:
  """Returns <run_dir>/../.cache/tokens: shared by the runs next to each other."""
  return os.path.join(os.path.dirname(os.path.abspath(run_dir)), '.cache', 'tokens')


def _held_out_seed(seed: int, split: str) -> int:
  """The task's seed for a held-out split: fixed (the same batches at every evaluation)
  and apart from training's."""
  return int(np.random.SeedSequence([seed, 1 + list(_SPLIT_NAMES).index(split)])
             .generate_state(1)[0])


def _three_splits(streams: dict, data_cfg: Any) -> tuple:
  """(train, val, test) tokens of one source: its document splits, or its stream cut by
  split_bounds (memory-mapped views, nothing read)."""
  if 'all' not in streams:
    return streams['train'], streams['val'], streams['test']
  tokens_T = streams['all']
  train_end, val_end = split_bounds(len(tokens_T), data_cfg.val_fraction,
                                    data_cfg.test_fraction)
  if isinstance(tokens_T, TokenStream):
    return (tokens_T.view(0, train_end), tokens_T.view(train_end, val_end),
            tokens_T.view(val_end, len(tokens_T)))
  return tokens_T[:train_end], tokens_T[train_end:val_end], tokens_T[val_end:]


def build_data(data_cfg: Any, *, global_batch_size: int, run_dir: str, task: Task | None = None,
               process_index: int = 0, rows: Sequence[int] | None = None,
               resuming: bool = False, allow_new_data: bool = False) -> Data:
  """Builds tokenizer, train iterator and held-out batches from the `data` config; the
  batches hold rows `rows` (increasing global row indices; None: all) of each global batch,
  made by `task` (default: next-token prediction).

  `resuming`: the run directory has a checkpoint, so its tokenizer is kept
  (see run_tokenizer.py); `allow_new_data` lets it be kept for a changed corpus.
  """
  cache_dir = data_cfg.cache_dir or default_cache_dir(run_dir)
  task = task or get_task('lm')
  roles = task.special_tokens(data_cfg)
  documents_mode = prepared_corpus.uses_preparation(data_cfg)
  if data_cfg.document_mask and not roles:
    raise ValueError('data.document_mask=True needs documents separated by special tokens, '
                     f'but data.separator={data_cfg.separator!r} resolves to blank_line for '
                     f'data.source={data_cfg.source!r}; set data.separator=eos (or bos)')
  if documents_mode:
    corpus = prepared_corpus.plan_corpus(data_cfg, cache_dir)
    files, corpus_fp, read_text = corpus.files, corpus.fingerprint, corpus.read_text
  else:
    files = sources.corpus_files(data_cfg.source, data_cfg.file_glob, data_cfg.max_bytes)
    corpus_fp = fingerprint.corpus_fingerprint(files, data_cfg.max_bytes, memo_dir=cache_dir)

    @functools.cache
    def read_text() -> str:  # read lazily: a warm cache never touches the corpus
      text, _ = sources.read_corpus(data_cfg.source, data_cfg.file_glob, data_cfg.max_bytes)
      return text

  tokenizer = run_tokenizer.run_tokenizer(
      data_cfg, run_dir, cache_dir, corpus_fp, read_text, resuming=resuming,
      allow_new_data=allow_new_data, is_primary=process_index == 0)
  if documents_mode:
    streams, tokens_path = prepared_corpus.split_streams(
        corpus, tokenizer, cache_dir, roles=roles, progress=process_index == 0,
        is_primary=process_index == 0)
  else:
    streams = [{'all': token_cache.cached_tokens(cache_dir, tokenizer, corpus_fp, read_text)}]
    tokens_path = token_cache.tokens_path(cache_dir, tokenizer, corpus_fp)
  parts = [_three_splits(s, data_cfg) for s in streams]
  train_parts = [p[0] for p in parts]
  train_T = train_parts[0] if len(parts) == 1 else mixture.Concat(train_parts)
  window = task.window_len(data_cfg.seq_len, data_cfg)
  val_T, test_T = ((parts[0][i] if len(parts) == 1
                    else mixture.Interleaved([p[i] for p in parts], window)) for i in (1, 2))
  specials = special_tokens.special_ids(tokenizer, roles)
  if task.examples is not None:  # the task's own rows (seq2seq pairs) replace the windows
    train_T, val_T, test_T = (task.examples(data_cfg, tokenizer, specials, split)
                              for split in ('train', 'val', 'test'))
  ctx = TaskContext(data_cfg=data_cfg, specials=specials,
                    text_vocab_size=tokenizer.vocab_size, seed=data_cfg.seed)
  make = BatchMaker(task, ctx)
  if data_cfg.mixture:
    dataset = mixture.mixture_dataset(
        train_parts, corpus.weights, data_cfg.seq_len, global_batch_size, data_cfg.seed,
        _checked_rows(rows, global_batch_size), make, Windows, _shuffle_seed)
  else:
    dataset = train_dataset(train_T, data_cfg.seq_len, global_batch_size, data_cfg.seed, rows,
                            make)
  held_out = {split: functools.partial(
      val_batches, tokens, data_cfg.seq_len, global_batch_size, rows=rows, split=split,
      make=BatchMaker(task, dataclasses.replace(ctx, seed=_held_out_seed(data_cfg.seed, split))))
              for split, tokens in (('val', val_T), ('test', test_T))}
  for split in ('val', 'test'):
    if data_cfg[f'{split}_fraction'] > 0:
      held_out[split](0)  # fail now, not at the first eval, if it holds less than one batch
  counts = [_num_tokens(t) for t in (train_T, val_T, test_T)]
  logging.info('data: %d files, %d tokens (train %d, val %d, test %d), vocab %d (%s)',
               len(files), sum(counts), *counts, tokenizer.vocab_size, tokenizer.kind)
  data_fp = fingerprint.data_fingerprint(data_cfg, global_batch_size, tokenizer.identity(),
                                         corpus_fp, task)
  if documents_mode:  # absent from older fingerprints, which compare only their own keys
    data_fp.update({'data.separator': boundaries.resolve_separator(data_cfg),
                    'data.split_by': data_cfg.split_by})
  return Data(
      tokenizer=tokenizer,
      vocab_size=special_tokens.model_vocab_size(tokenizer, roles),
      specials=specials,
      train_iter=train_iterator(dataset, data_cfg.prefetch),
      val_batches=held_out['val'],
      test_batches=held_out['test'],
      train_tokens=counts[0],
      val_tokens=counts[1],
      test_tokens=counts[2],
      fingerprint=data_fp,
      tokens_path=tokens_path,
  )
