"""The two storages experiments/bench_token_storage.py compares, written and read alike.

  memmap       raw uint16 .bin shards (lm_jax/data/prepare.py's format), read through the
               project's TokenStream + pipeline.Windows
  ArrayRecord  one record per window of L + 1 tokens (the uint16 bytes), read through grain's
               ArrayRecordDataSource, or (range_reads) ArrayRecordReader.read(k, k + 1)

Both give window k as int32 [L + 1] = ids[k (L + 1):(k + 1)(L + 1)], and both plug into the
project's loader (pipeline.train_dataset): the ArrayRecord reader as a task's 2-D example rows.
"""

import mmap
import os
import time

from array_record.python import array_record_module
import grain
import numpy as np

from lm_jax.data import pipeline
from lm_jax.data.token_stream import TokenStream

BATCH = 8
DTYPE = np.uint16
AR_OPTIONS = {'ar_default': '', 'ar_raw': 'group_size:1,uncompressed',
              'ar_g65536': 'group_size:65536'}
FORMATS = ('memmap',) + tuple(AR_OPTIONS)


def _fsync(path: str) -> None:
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def write_bin(paths: list[str], ids: np.ndarray, piece: int = 1 << 19) -> float:
  """Writes ids as prepare.py does (tofile, appended piece by piece), shard i holding
  tokens [i * S, (i + 1) * S) of S = ceil(len / shards), + fsync; seconds."""
  per = -(-len(ids) // len(paths))
  t0 = time.perf_counter()
  for i, path in enumerate(paths):
    with open(path, 'wb') as f:
      for a in range(i * per, min((i + 1) * per, len(ids)), piece):
        ids[a:min(a + piece, (i + 1) * per)].tofile(f)
    _fsync(path)
  return time.perf_counter() - t0


def write_arrayrecord(paths: list[str], ids: np.ndarray, window: int, options: str) -> float:
  """Writes one record per non-overlapping `window`-token window (its bytes), file i holding
  windows [i * R, (i + 1) * R) of R = ceil(windows / files), + fsync; seconds. The ragged
  tail is dropped, as Windows drops it."""
  rows = ids[:len(ids) // window * window].reshape(-1, window)
  per = -(-len(rows) // len(paths))
  t0 = time.perf_counter()
  for i, path in enumerate(paths):
    writer = array_record_module.ArrayRecordWriter(path, options)
    for row in rows[i * per:(i + 1) * per]:
      writer.write(row.tobytes())
    writer.close()
    _fsync(path)
  return time.perf_counter() - t0


class MemmapReader:
  """The project's reader: TokenStream over the .bin, Windows of `window` tokens."""

  def __init__(self, paths: list[str], window: int):
    counts = [os.path.getsize(p) // np.dtype(DTYPE).itemsize for p in paths]
    self.tokens = TokenStream(paths, counts, DTYPE)
    self.windows = pipeline.Windows(self.tokens, window)
    self.window = window

  def __len__(self) -> int:
    return len(self.windows)

  def advise_random(self) -> None:
    """Opens every shard with madvise(MADV_RANDOM): a page fault reads its page, not the
    device's read-ahead window around it (TokenStream itself does not do this)."""
    for i in range(len(self.tokens.paths)):
      shard = self.tokens._shard(i)  # pylint: disable=protected-access
      if getattr(shard, '_mmap', None) is not None:
        shard._mmap.madvise(mmap.MADV_RANDOM)  # pylint: disable=protected-access

  def batch(self, keys) -> np.ndarray:
    return np.stack([self.windows[int(k)] for k in keys])

  def batched(self, keys) -> np.ndarray:
    """All rows in one gather per mapped shard (not a path the project takes); a window
    across two shards falls back to the stream's slice."""
    out = np.empty((len(keys), self.window), np.int32)
    starts = np.asarray(keys, np.int64) * self.window
    shard = np.searchsorted(self.tokens.offsets, starts, side='right') - 1
    for i in np.unique(shard):
      rows = np.flatnonzero(shard == i)
      lo = starts[rows] - self.tokens.offsets[i]
      inside = lo + self.window <= self.tokens.counts[i]
      ids = self.tokens._shard(int(i))  # pylint: disable=protected-access
      out[rows[inside]] = ids[lo[inside, None] + np.arange(self.window)]
      for r in rows[~inside]:
        out[r] = self.windows[int(keys[r])]
    return out

  def source(self):
    return self.tokens  # train_dataset cuts its Windows itself


class ArrayRecordReader:
  """Windows as ArrayRecord records, through grain's ArrayRecordDataSource (or, range_reads,
  the files' readers' read(k, k + 1)). Shaped like a task's [N, W] example rows (ndim, shape,
  rows by index), so pipeline.windows_of takes it."""
  ndim = 2

  def __init__(self, paths: list[str], window: int, range_reads: bool = False):
    self.data = grain.sources.ArrayRecordDataSource(list(paths))
    self.window = window
    self.shape = (len(self.data), window)
    self.range_reads, self.paths, self._readers = range_reads, list(paths), {}
    self._starts = None

  def __len__(self) -> int:
    return self.shape[0]

  def _record(self, index: int) -> bytes:
    """Record `index` by read(k, k + 1): not ArrayRecordDataSource's read([k]), which
    array_record 0.8.6 makes O(records in the file) (a per-chunk table per call)."""
    if self._starts is None:
      counts = [array_record_module.ArrayRecordReader(p).num_records() for p in self.paths]
      self._starts = np.concatenate([[0], np.cumsum(counts)])
    f = int(np.searchsorted(self._starts, index, side='right')) - 1
    if f not in self._readers:  # the data source's reader options
      self._readers[f] = array_record_module.ArrayRecordReader(
          self.paths[f], 'readahead_buffer_size:0', file_reader_buffer_size=32768)
    k = index - int(self._starts[f])
    return self._readers[f].read(k, k + 1)[0]

  def __getitem__(self, index) -> np.ndarray:
    record = self._record(int(index)) if self.range_reads else self.data[int(index)]
    return np.frombuffer(record, DTYPE).astype(np.int32)

  def batch(self, keys) -> np.ndarray:
    return np.stack([self[k] for k in keys])

  def batched(self, keys) -> np.ndarray:
    records = self.data.__getitems__([int(k) for k in keys])
    return np.frombuffer(b''.join(records), DTYPE).reshape(len(keys), -1).astype(np.int32)

  def source(self):
    return self

  def close(self) -> None:
    self.data.__exit__(None, None, None)
    for reader in self._readers.values():
      reader.close()


def open_reader(fmt: str, paths: list[str], window: int, range_reads: bool = False):
  return (MemmapReader(paths, window) if fmt == 'memmap'
          else ArrayRecordReader(paths, window, range_reads))


def grain_iterator(reader, seq_len: int, seed: int, prefetch: int = 2):
  """The project's train loader over `reader`'s windows (batch 8, all rows)."""
  ds = pipeline.train_dataset(reader.source(), seq_len, BATCH, seed)
  return pipeline.train_iterator(ds, prefetch)


def same_windows(paths: dict, ids: np.ndarray, seq_len: int, keys) -> bool:
  """Whether every format, one window at a time and batched, returns windows k of `ids`
  (ids[k * (L + 1):(k + 1) * (L + 1)]) for `keys`."""
  w = seq_len + 1
  want = np.stack([ids[int(k) * w:(int(k) + 1) * w] for k in keys]).astype(np.int32)
  for fmt, files in paths.items():
    for reader in [open_reader(fmt, files, w)] + (
        [] if fmt == 'memmap' else [open_reader(fmt, files, w, range_reads=True)]):
      if not (np.array_equal(reader.batch(keys), want)
              and np.array_equal(reader.batched(keys), want)):
        return False
  return True
