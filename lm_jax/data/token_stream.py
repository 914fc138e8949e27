"""One token stream over many shard files, memory-mapped lazily (NumPy only).

A prepared corpus (lm_jax/data/prepare.py) is a list of raw token files
(`.bin`, one per chunk and split). `TokenStream` is their concatenation with
the array interface `Windows` uses: `len()` and contiguous slices. A shard is
mapped the first time a slice touches it, and a slice reads only the pages it
covers, so a process that loads rows of some windows maps only the shards that
hold them and reads only those bytes: on several hosts each reads its own rows'
share of the corpus, not the whole of it. The maps are madvise(MADV_RANDOM)d:
without it a page fault reads ahead the device's read_ahead_kb (8 MB on the
development VM), and 100 random batches pulled 99% of a 400 MB shard into
memory (docs/data.md, "Storage").
"""

import mmap

import numpy as np


def map_tokens(path: str, dtype) -> np.ndarray:
  """The token file at `path` as a read-only array backed by a random-access mmap."""
  with open(path, 'rb') as f:
    mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
  if hasattr(mmap, 'MADV_RANDOM'):  # Linux, macOS; elsewhere the OS default read-ahead
    mapped.madvise(mmap.MADV_RANDOM)
  return np.frombuffer(mapped, dtype=dtype)


class TokenStream:
  """Tokens [start, end) of the concatenation of `paths` (their lengths `counts`)."""

  def __init__(self, paths: list[str], counts: list[int], dtype, start: int = 0,
               end: int | None = None, _maps: list | None = None):
    self.paths, self.counts, self.dtype = list(paths), [int(c) for c in counts], np.dtype(dtype)
    self.offsets = np.concatenate([[0], np.cumsum(self.counts, dtype=np.int64)])
    total = int(self.offsets[-1])
    self.start, self.end = start, total if end is None else end
    if not 0 <= self.start <= self.end <= total:
      raise ValueError(f'token range [{start}, {end}) outside [0, {total}]')
    self._maps = _maps if _maps is not None else [None] * len(self.paths)

  def __len__(self) -> int:
    return self.end - self.start

  def view(self, start: int, end: int) -> 'TokenStream':
    """Tokens [start, end) of this stream, sharing its opened shards."""
    return TokenStream(self.paths, self.counts, self.dtype, self.start + start,
                       self.start + end, self._maps)

  def _shard(self, i: int) -> np.ndarray:
    if self._maps[i] is None:
      self._maps[i] = (map_tokens(self.paths[i], self.dtype)
                       if self.counts[i] else np.zeros(0, self.dtype))
    return self._maps[i]

  def __getitem__(self, key) -> np.ndarray:
    if not isinstance(key, slice) or key.step not in (None, 1):
      raise TypeError('a TokenStream takes contiguous slices [a:b]')
    a, b, _ = key.indices(len(self))
    a, b = self.start + a, self.start + max(a, b)
    first = int(np.searchsorted(self.offsets, a, side='right')) - 1
    parts = []
    i = first
    while a < b:
      lo = a - int(self.offsets[i])
      take = min(b - a, self.counts[i] - lo)
      if take > 0:
        parts.append(self._shard(i)[lo:lo + take])
        a += take
      i += 1
    if len(parts) == 1:
      return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, self.dtype)

  def __array__(self, dtype=None, copy=None):
    out = self[0:len(self)]
    return out.astype(dtype) if dtype is not None else np.asarray(out)
