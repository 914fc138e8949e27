"""Pipeline: packing, split, per-process rows, shuffling, epochs, resumable state."""

import json

import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data import pipeline

L = 8          # seq_len
W = L + 1      # window
B = 4          # global batch


def stream(num_windows, extra=3):
  """Token ids 0..N*W+extra (a ragged tail that packing must drop)."""
  return np.arange(num_windows * W + extra, dtype=np.uint16)


def take(it, n):
  return [next(it) for _ in range(n)]


def window_ids(batch):
  """Which window each row is (tokens are 0..T, so the first token says)."""
  return batch['inputs'][:, 0] // W


def test_windows_reconstruct_the_stream():
  tokens_T = stream(10)
  windows = pipeline.Windows(tokens_T, W)  # W = L + 1 tokens: inputs and shifted targets
  assert len(windows) == 10
  ref_NxW = tokens_T[:10 * W].reshape(10, W)
  np.testing.assert_array_equal(np.concatenate([windows[i] for i in range(10)]), tokens_T[:10 * W])
  np.testing.assert_array_equal(np.stack([windows[i] for i in range(10)]), ref_NxW)
  with pytest.raises(IndexError):
    windows[10]


def test_batches_are_shifted_windows():
  tokens_T = (np.arange(20 * W + 5) * 7919 % 256).astype(np.uint16)  # not monotone
  ref_NxW = tokens_T[:20 * W].reshape(20, W).astype(np.int32)
  it = pipeline.train_iterator(pipeline.train_dataset(tokens_T, L, B, seed=0), prefetch=0)
  seen = []
  for batch in take(it, 5):  # one epoch: 20 windows / 4
    assert batch['inputs'].shape == batch['targets'].shape == (B, L)
    assert batch['inputs'].dtype == batch['targets'].dtype == np.int32
    assert batch['weights'].dtype == np.float32 and (batch['weights'] == 1).all()
    np.testing.assert_array_equal(batch['targets'][:, :-1], batch['inputs'][:, 1:])
    rows_BxW = np.concatenate([batch['inputs'], batch['targets'][:, -1:]], axis=1)
    for row in rows_BxW:
      match = np.flatnonzero((ref_NxW == row).all(axis=1))
      assert len(match) == 1
      seen.append(int(match[0]))
  assert sorted(seen) == list(range(20))  # an epoch is a permutation of all windows


def test_epochs_are_reshuffled():
  it = pipeline.train_iterator(pipeline.train_dataset(stream(20), L, B, seed=0), prefetch=2)
  order = np.concatenate([window_ids(b) for b in take(it, 15)]).reshape(3, 20)
  for epoch in order:
    assert sorted(epoch) == list(range(20))
  assert not (order[0] == order[1]).all() and not (order[1] == order[2]).all()


def test_shuffle_is_seeded():
  def first_epoch(seed):
    it = pipeline.train_iterator(pipeline.train_dataset(stream(40), L, B, seed=seed), 0)
    return np.concatenate([window_ids(b) for b in take(it, 10)])
  np.testing.assert_array_equal(first_epoch(3), first_epoch(3))
  assert not (first_epoch(3) == first_epoch(4)).all()
  assert not (first_epoch(3) == np.arange(40)).all()


@pytest.mark.parametrize('rows', [(0, 1, 2, 3), (4, 5, 6, 7), (0, 1, 4, 5), (2, 7),
                                  tuple(range(8))],
                         ids=['first_half', 'second_half', 'non_contiguous', 'two', 'all'])
def test_given_rows_of_the_global_batch_are_read_in_global_order(rows):
  tokens_T = stream(64)
  global_batches = take(pipeline.train_iterator(
      pipeline.train_dataset(tokens_T, L, 8, seed=1), 0), 6)
  local = take(pipeline.train_iterator(
      pipeline.train_dataset(tokens_T, L, 8, 1, rows=list(rows)), 2), 6)
  for step, global_batch in enumerate(global_batches):
    for key in ('inputs', 'targets', 'weights'):
      assert local[step][key].shape == (len(rows), L)
      np.testing.assert_array_equal(local[step][key], global_batch[key][list(rows)])
  val_global = pipeline.val_batches(tokens_T, L, 8, 3)
  val_local = pipeline.val_batches(tokens_T, L, 8, 3, rows=rows)
  for step in range(3):
    np.testing.assert_array_equal(val_local[step]['inputs'],
                                  val_global[step]['inputs'][list(rows)])


@pytest.mark.parametrize('rows', [(), (1, 0), (2, 2), (7, 8), (-1, 3)])
def test_rows_outside_the_batch_or_out_of_order_are_refused(rows):
  with pytest.raises(ValueError, match=r'rows must be increasing, distinct indices in \[0, 8\)'):
    pipeline.train_dataset(stream(64), L, 8, 0, rows=rows)


def test_a_process_reads_only_its_rows(monkeypatch):
  tokens_T, read = stream(64), []
  get = pipeline.Windows.__getitem__

  def counting_get(self, i):
    if self.tokens_T is tokens_T:  # not the windows of other tests' prefetch threads
      read.append(i)
    return get(self, i)

  monkeypatch.setattr(pipeline.Windows, '__getitem__', counting_get)
  batches = take(pipeline.train_iterator(
      pipeline.train_dataset(tokens_T, L, 8, 1, rows=(1, 6)), 0), 3)
  assert len(read) == 3 * 2  # 2 of the 8 rows of each global batch
  np.testing.assert_array_equal(np.concatenate([window_ids(b) for b in batches]), read)


@pytest.mark.parametrize('prefetch', [0, 2])
def test_get_state_set_state_resumes_exactly(prefetch):
  ds = pipeline.train_dataset(stream(20), L, B, seed=5)
  it = pipeline.train_iterator(ds, prefetch)
  take(it, 7)  # into the second epoch
  state = json.loads(json.dumps(it.get_state()))  # states survive JSON (Orbax writes JSON)
  expected = take(it, 6)
  fresh = pipeline.train_iterator(ds, prefetch)
  fresh.set_state(state)
  it.set_state(state)  # rewinding the same iterator works too
  for want, got_fresh, got_same in zip(expected, take(fresh, 6), take(it, 6)):
    for key in want:
      np.testing.assert_array_equal(got_fresh[key], want[key])
      np.testing.assert_array_equal(got_same[key], want[key])


def test_val_batches_are_the_first_windows_in_order():
  tokens_T = stream(13)
  batches = pipeline.val_batches(tokens_T, L, B, 2)
  assert len(batches) == 2
  np.testing.assert_array_equal(
      np.concatenate([b['inputs'] for b in batches]), tokens_T[:8 * W].reshape(8, W)[:, :-1])
  assert len(pipeline.val_batches(tokens_T, L, B, 10)) == 3  # capped at what exists
  with pytest.raises(ValueError, match='fewer than one global batch'):
    pipeline.val_batches(stream(3), L, B, 1)


def test_build_data_split_and_shapes(tmp_path):
  rng = np.random.default_rng(0)
  text = ''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz'), size=5000))
  (tmp_path / 'c.txt').write_text(text)
  cfg = base_config().data
  cfg.update(source=str(tmp_path / 'c.txt'), tokenizer='byte', seq_len=L, val_fraction=0.2,
             test_fraction=0.0)
  data = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'run'),
                             process_index=1, rows=[1, 2, 5, 6])
  assert (data.train_tokens, data.val_tokens) == (4000, 1000)
  ids_T = np.frombuffer(text.encode(), np.uint8).astype(np.int32)
  val = data.val_batches(2)
  # Rows 1, 2, 5, 6 of each global batch of 8: val windows 1, 2, 5, 6 and 9, 10, 13, 14.
  np.testing.assert_array_equal(val[0]['inputs'][0], ids_T[4000 + 1 * W:4000 + 1 * W + L])
  np.testing.assert_array_equal(val[0]['inputs'][2], ids_T[4000 + 5 * W:4000 + 5 * W + L])
  np.testing.assert_array_equal(val[1]['targets'][3], ids_T[4000 + 14 * W + 1:4000 + 15 * W])
  train_NxW = ids_T[:4000 // W * W].reshape(-1, W)  # train is the head of the stream
  batch = next(data.train_iter)
  assert batch['inputs'].shape == (4, L)
  for row in np.concatenate([batch['inputs'], batch['targets'][:, -1:]], axis=1):
    assert (train_NxW == row).all(axis=1).any()
  cfg.val_fraction = 0.002  # 10 tokens: not one batch of windows
  with pytest.raises(ValueError, match='validation split has 1 windows'):
    pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'run'))


def test_no_validation_split(tmp_path):
  (tmp_path / 'c.txt').write_text('abcdefgh' * 200)
  cfg = base_config().data
  cfg.update(source=str(tmp_path / 'c.txt'), tokenizer='byte', seq_len=L, val_fraction=0.0,
             test_fraction=0.0)
  data = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'run'))
  assert (data.train_tokens, data.val_tokens, data.test_tokens) == (1600, 0, 0)
  assert next(data.train_iter)['inputs'].shape == (8, L)
  with pytest.raises(ValueError, match='validation split has 0 windows'):
    data.val_batches(1)
  with pytest.raises(ValueError, match=r'val_fraction must be in \[0, 1\)'):
    pipeline.split_bounds(10, 1.0, 0.0)
