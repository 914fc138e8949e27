"""experiments/bench_token_storage.py and token_storage_formats.py: both storages return the
same windows, alone and through the project's loader (tiny sizes)."""

import numpy as np
import pytest

from experiments import bench_token_storage as bench
from experiments import token_storage_formats as bts


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp('storage')
  ids = np.random.default_rng(3).integers(0, bench.VOCAB, 20_011).astype(np.uint16)
  window = 33
  # three files each: windows cross the .bin shards' boundaries, as in a preparation
  paths = {'memmap': [str(d / f'tokens-{i}.bin') for i in range(3)]}
  bts.write_bin(paths['memmap'], ids, piece=1000)
  for fmt, options in bts.AR_OPTIONS.items():
    paths[fmt] = [str(d / f'{fmt}-{i}.ar') for i in range(3)]
    bts.write_arrayrecord(paths[fmt], ids, window, options)
  return ids, window, paths


def test_every_format_reads_window_k_of_the_ids(files):
  ids, window, paths = files
  keys = np.random.default_rng(0).integers(0, len(ids) // window, 8)
  keys[0] = len(ids) // window - 1  # the last whole window (the ragged tail is dropped)
  keys[1] = 6671 // 33  # the window across the first .bin shard's end (6671 tokens each)
  want = np.stack([ids[k * window:(k + 1) * window] for k in keys]).astype(np.int32)
  assert np.array_equal(np.concatenate([np.fromfile(p, np.uint16) for p in paths['memmap']]),
                        ids)
  for fmt, files in paths.items():
    for range_reads in (False, True) if fmt != 'memmap' else (False,):
      reader = bts.open_reader(fmt, files, window, range_reads)
      assert len(reader) == 20_011 // 33, fmt
      assert np.array_equal(reader.batch(keys), want), (fmt, range_reads)
      assert np.array_equal(reader.batched(keys), want), (fmt, range_reads)
      if fmt == 'memmap':
        reader.advise_random()  # changes how pages are read, not what
        assert np.array_equal(reader.batch(keys), want)
  assert bts.same_windows(paths, ids, window - 1, keys)


def test_grain_loader_gives_the_same_batches_from_either_format(files):
  ids, window, paths = files
  by_bytes = {ids[k * window:(k + 1) * window].tobytes(): k for k in range(len(ids) // window)}
  got = {}
  for fmt, range_reads in (('memmap', False), ('ar_raw', False), ('ar_default', True)):
    reader = bts.open_reader(fmt, paths[fmt], window, range_reads)
    it = bts.grain_iterator(reader, window - 1, seed=5)
    got[fmt] = [next(it) for _ in range(3)]
  for a, b, c in zip(got['memmap'], got['ar_raw'], got['ar_default']):
    for key in ('inputs', 'targets'):
      assert np.array_equal(a[key], b[key]) and np.array_equal(a[key], c[key])
    for x, y in zip(a['inputs'], a['targets']):  # each row is one window of the ids, shifted
      assert np.array_equal(x[1:], y[:-1])
      assert np.append(x, y[-1]).astype(np.uint16).tobytes() in by_bytes


def test_evict_leaves_no_page_resident(files):
  paths = files[2]['memmap']
  for path in paths:
    bench.warm(path)
    bench.evict(path)
  resident = bench.resident_fraction(paths)
  if resident is None:
    pytest.skip('fincore not available')
  assert resident == 0.0  # (a live np.memmap of a file would keep its pages)
