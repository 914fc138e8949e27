"""experiments/bench_token_storage.py: both storages return the same windows (tiny sizes)."""

import numpy as np
import pytest

from experiments import bench_token_storage as bts


@pytest.fixture(scope='module')
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp('storage')
  ids = np.random.default_rng(3).integers(0, bts.VOCAB, 20_011).astype(np.uint16)
  window = 33
  paths = {'memmap': str(d / 'tokens.bin')}
  bts.write_bin(paths['memmap'], ids, piece=1000)
  for fmt, options in bts.AR_OPTIONS.items():
    paths[fmt] = str(d / f'{fmt}.ar')
    bts.write_arrayrecord(paths[fmt], ids, window, options)
  return ids, window, paths


def test_every_format_reads_window_k_of_the_ids(files):
  ids, window, paths = files
  keys = np.random.default_rng(0).integers(0, len(ids) // window, 8)
  keys[0] = len(ids) // window - 1  # the last whole window (the ragged tail is dropped)
  want = np.stack([ids[k * window:(k + 1) * window] for k in keys]).astype(np.int32)
  assert np.array_equal(np.fromfile(paths['memmap'], np.uint16), ids)
  for fmt, path in paths.items():
    reader = bts.open_reader(fmt, path, window)
    assert len(reader) == 20_011 // 33, fmt
    assert np.array_equal(reader.batch(keys), want), fmt
    assert np.array_equal(reader.batched(keys), want), fmt
  assert bts.same_windows(paths, ids, window - 1, keys)


def test_grain_loader_gives_the_same_batches_from_either_format(files):
  ids, window, paths = files
  by_bytes = {ids[k * window:(k + 1) * window].tobytes(): k for k in range(len(ids) // window)}
  got = {}
  for fmt in ('memmap', 'ar_raw'):
    it = bts.grain_iterator(bts.open_reader(fmt, paths[fmt], window), window - 1, seed=5)
    got[fmt] = [next(it) for _ in range(3)]
  for a, b in zip(got['memmap'], got['ar_raw']):
    assert np.array_equal(a['inputs'], b['inputs']) and np.array_equal(a['targets'], b['targets'])
    for x, y in zip(a['inputs'], a['targets']):  # each row is one window of the ids, shifted
      assert np.array_equal(x[1:], y[:-1])
      assert np.append(x, y[-1]).astype(np.uint16).tobytes() in by_bytes


def test_evict_leaves_no_page_resident(files):
  path = files[2]['memmap']
  bts.warm(path)
  bts.evict(path)
  resident = bts.resident_fraction(path)
  if resident is None:
    pytest.skip('fincore not available')
  assert resident == 0.0
