"""Random windows of a prepared shard read only their own pages, not the device's read-ahead.

Resident pages are counted with mincore(2) on a private mapping of the file after its pages
were evicted (fsync + POSIX_FADV_DONTNEED). Skipped where that cannot be observed (not Linux,
a page cache that does not drop the file, e.g. tmpfs)."""

import ctypes
import ctypes.util
import mmap
import os
import sys

import numpy as np
import pytest

from experiments.bench_token_storage import evict
from lm_jax.data.token_stream import TokenStream

PAGE = mmap.PAGESIZE


def _resident_pages(path) -> int:
  """How many of the file's pages are in the page cache (mincore on a fresh mapping)."""
  libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
  size = os.path.getsize(path)
  with open(path, 'rb') as f:
    m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
  try:
    buf = (ctypes.c_char * size).from_buffer(m)
    vec = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
    if libc.mincore(ctypes.c_void_p(ctypes.addressof(buf)), ctypes.c_size_t(size), vec):
      pytest.skip(f'mincore failed: errno {ctypes.get_errno()}')
    del buf
    return sum(v & 1 for v in vec)
  finally:
    m.close()


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mincore / fadvise: Linux')
def test_random_windows_read_their_pages_only(tmp_path):
  path = str(tmp_path / 'shard-00000-train.bin')
  ids = np.random.default_rng(0).integers(0, 50000, 16 << 20, dtype=np.uint16)  # 32 MB
  ids.tofile(path)
  evict(path)
  pages = (ids.nbytes + PAGE - 1) // PAGE
  if _resident_pages(path) > pages // 100:
    pytest.skip('the page cache kept the file after POSIX_FADV_DONTNEED (tmpfs?)')
  stream = TokenStream([path], [ids.size], 'uint16')
  starts = np.random.default_rng(1).integers(0, ids.size - 1025, 40)
  for a in starts:
    np.testing.assert_array_equal(stream[int(a):int(a) + 1025], ids[a:a + 1025])
  # 40 windows of 2050 bytes touch at most 80 pages (+ a few of the kernel's own); the
  # default read-ahead (128 KB to 8 MB per fault) would bring in thousands.
  assert _resident_pages(path) <= 120, 'a random window read more than its pages'
