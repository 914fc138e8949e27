"""T5 span corruption: the noise statistics T5's rule implies, the sentinel layout of a
hand-written example, and batches that depend on (seed, row id) only."""

from math import comb

import numpy as np

from lm_jax.config.defaults import base_config
from lm_jax.data import span_noise
from lm_jax.data.pipeline import build_data
from lm_jax.data.special_tokens import NUM_SENTINELS, sentinel_roles
from lm_jax.data.tasks import TaskContext, get_task


def test_hand_written_example():
  tokens = np.arange(10, 20)
  noise = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 1], bool)
  inputs, targets = span_noise.corrupt(tokens, noise, [100, 101, 102], eos_id=1)
  np.testing.assert_array_equal(inputs, [10, 11, 100, 14, 15, 16, 101, 18, 102, 1])
  np.testing.assert_array_equal(targets, [100, 12, 13, 101, 17, 102, 19, 1])


def test_t5_lengths():
  # T5's random_spans_helper: inputs_length 512 -> 568 raw tokens, 114 targets.
  assert span_noise.raw_length(512, 0.15, 3.0) == 568
  assert span_noise.corrupted_lengths(568, 0.15, 3.0) == (512, 114)


def test_noise_statistics():
  rng = np.random.default_rng(0)
  masks = np.stack([span_noise.random_spans_noise_mask(100, 0.15, 3.0, rng)
                    for _ in range(3000)])
  # round(100 * 0.15) = 15 noise tokens in round(15 / 3) = 5 spans: mean length 3.
  assert (masks.sum(1) == 15).all()
  starts = masks & ~np.concatenate([np.zeros((3000, 1), bool), masks[:, :-1]], 1)
  assert (starts.sum(1) == 5).all()
  assert not masks[:, 0].any() and masks[:, -1].all()  # kept run first, noise run last
  # A noise span's length: a uniform cut of 15 into 5 non-empty parts gives a
  # part of length k with probability C(15 - k - 1, 3) / C(14, 4).
  noise_lengths, kept_lengths = [], []
  for row in masks:
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[1], row, [0]]).astype(int))))
    kept_lengths.extend(runs[::2])
    noise_lengths.extend(runs[1::2])
  noise_lengths, kept_lengths = np.array(noise_lengths), np.array(kept_lengths)
  assert noise_lengths.mean() == 3.0 and kept_lengths.mean() == 17.0
  for k in (1, 2, 3, 5):
    expected = comb(15 - k - 1, 3) / comb(14, 4)
    assert abs(np.mean(noise_lengths == k) - expected) < 0.015, k
  # The 85 kept tokens are cut into 5 runs the same way: P(1) = C(83, 3) / C(84, 4).
  assert abs(np.mean(kept_lengths == 1) - comb(83, 3) / comb(84, 4)) < 0.008


def _ctx(seed=0):
  c = base_config().data
  c.seq_len = 32
  roles = ('eos', 'pad') + sentinel_roles(NUM_SENTINELS)
  specials = {r: 1000 + i for i, r in enumerate(roles)}
  return TaskContext(data_cfg=c, specials=specials, text_vocab_size=1000, seed=seed)


def _uncorrupt(inputs, targets, specials):
  """The window back from (inputs, targets): each sentinel replaced by its span."""
  sentinel_k = {specials[r]: k for k, r in enumerate(sentinel_roles(NUM_SENTINELS))}
  spans, k = {}, None
  for t in targets:
    if t in sentinel_k:
      k = sentinel_k[t]
      spans[k] = []
    elif t != specials['eos']:
      spans[k].append(t)
  out = []
  for t in inputs:
    out.extend(spans[sentinel_k[t]] if t in sentinel_k else [t])
  return out


def test_batches_reconstruct_and_are_deterministic():
  task, ctx = get_task('span_corruption'), _ctx()
  W = task.window_len(32, ctx.data_cfg)
  assert W == 34  # 34 raw tokens: 5 noise in 2 spans -> 29 + 2 + EOS = 32 inputs
  windows = np.random.default_rng(1).integers(0, 1000, (8, W)).astype(np.int32)
  rows = np.arange(8) + 80
  batch = task.make_batch(windows, rows, ctx)
  spec = task.batch_spec(8, 32, ctx.data_cfg)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == spec
  pad, eos = ctx.specials['pad'], ctx.specials['eos']
  for b in range(8):
    enc = batch['encoder_inputs'][b][batch['encoder_valid'][b] == 1]
    dec = batch['targets'][b][batch['weights'][b] == 1]
    assert enc[-1] == eos and dec[-1] == eos
    assert _uncorrupt(enc[:-1], dec, ctx.specials) == windows[b].tolist()
    np.testing.assert_array_equal(batch['decoder_inputs'][b, 0], pad)
    np.testing.assert_array_equal(batch['decoder_inputs'][b, 1:len(dec)], dec[:-1])
  # Any split of the rows over processes gives the same rows; so does a rerun.
  halves = [task.make_batch(windows[s], rows[s], ctx) for s in (slice(0, 3), slice(3, 8))]
  for key, value in batch.items():
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), value)
  other = task.make_batch(windows, rows, _ctx(seed=1))
  assert not np.array_equal(other['targets'], batch['targets'])


def test_resumed_iterator_gives_the_same_batches(tmp_path):
  cfg = base_config().data
  cfg.update(task='span_corruption', max_bytes=60_000, seq_len=32,
             cache_dir=str(tmp_path / 'cache'), prefetch=0)
  task = get_task('span_corruption')

  def data(rows=None):
    return build_data(cfg, global_batch_size=4, run_dir=str(tmp_path / 'run'), task=task,
                      rows=rows)

  straight = data().train_iter
  batches = [next(straight) for _ in range(3)]
  resumed = data(rows=[1, 3]).train_iter  # another process's rows
  resumed.set_state(_after_two(data()))
  third = next(resumed)
  for key, value in third.items():
    np.testing.assert_array_equal(value, batches[2][key][[1, 3]])
  assert batches[0]['targets'].max() >= 256  # sentinels and EOS past the byte ids


def _after_two(d):
  next(d.train_iter)
  next(d.train_iter)
  return d.train_iter.get_state()
