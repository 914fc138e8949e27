"""The mlm task: BERT's 15% / 80-10-10 masking, specials, next-sentence pairs, determinism."""

import ml_collections
import numpy as np

from lm_jax.data.tasks import TaskContext, get_task

V = 50                                            # text vocabulary of these tests
SPECIALS = {'pad': 51, 'cls': 53, 'sep': 54, 'mask': 55}  # text_vocab_size + role index


def _ctx(nsp=False, probability=0.15, windows=None, seed=0):
  cfg = ml_collections.ConfigDict(dict(mlm_probability=probability, nsp=nsp))
  return TaskContext(data_cfg=cfg, specials=SPECIALS, text_vocab_size=V, seed=seed,
                     windows=windows)


def _windows(rows, width, seed=1):
  return np.random.default_rng(seed).integers(0, V, (rows, width), dtype=np.int32)


def test_masking_statistics_match_bert():
  task, ctx = get_task('mlm'), _ctx()
  seq_len = 64
  width = task.window_len(seq_len, ctx.data_cfg)
  assert width == 62  # [CLS] + 62 text tokens + [SEP]
  windows = _windows(3000, width)
  b = task.make_batch(windows, np.arange(3000), ctx)
  assert b['inputs'].shape == (3000, seq_len)
  # round(0.15 * 62) = round(9.3) = 9 tokens selected in every row.
  np.testing.assert_array_equal(b['weights'].sum(1), 9)
  sel = b['weights'] > 0
  inputs, targets = b['inputs'][sel], b['targets'][sel]
  n = sel.sum()
  # 80% [MASK]; 10% a uniform text token (equal to the original with p = 1/50); 10% kept.
  frac_mask = np.mean(inputs == SPECIALS['mask'])
  frac_same = np.mean(inputs == targets)
  frac_other = np.mean((inputs != targets) & (inputs != SPECIALS['mask']))
  tol = 4 * np.sqrt(0.25 / n)
  assert abs(frac_mask - 0.8) < tol
  assert abs(frac_same - (0.1 + 0.1 / V)) < tol
  assert abs(frac_other - 0.1 * (1 - 1 / V)) < tol
  assert inputs[inputs != SPECIALS['mask']].max() < V  # random tokens are text tokens
  # Unselected positions are untouched; targets are the original row.
  np.testing.assert_array_equal(b['inputs'][~sel], b['targets'][~sel])
  np.testing.assert_array_equal(b['targets'][:, 1:-1], windows)
  # Selected positions are spread over the text uniformly (each ~ 9 / 62).
  per_position = sel[:, 1:-1].mean(0)
  assert np.abs(per_position - 9 / 62).max() < 4 * np.sqrt(0.15 * 0.85 / 3000)


def test_specials_are_never_selected():
  task, ctx = get_task('mlm'), _ctx(probability=1.0)
  b = task.make_batch(_windows(50, 30), np.arange(50), ctx)
  np.testing.assert_array_equal(b['targets'][:, 0], SPECIALS['cls'])
  np.testing.assert_array_equal(b['targets'][:, -1], SPECIALS['sep'])
  np.testing.assert_array_equal(b['inputs'][:, [0, -1]], b['targets'][:, [0, -1]])
  np.testing.assert_array_equal(b['weights'][:, [0, -1]], 0)
  np.testing.assert_array_equal(b['weights'][:, 1:-1], 1)  # probability 1: every text token


def test_rows_depend_only_on_their_global_id_and_seed():
  task, ctx = get_task('mlm'), _ctx(nsp=True, windows=list(_windows(40, 29, seed=5)))
  windows, ids = _windows(8, 29), np.arange(100, 108)
  whole = task.make_batch(windows, ids, ctx)
  # Two "processes" each making half the rows, in another grouping.
  parts = [task.make_batch(windows[i::2], ids[i::2], ctx) for i in (0, 1)]
  for key, value in whole.items():
    np.testing.assert_array_equal(value[0::2], parts[0][key])
    np.testing.assert_array_equal(value[1::2], parts[1][key])
  other_seed = task.make_batch(windows, ids, _ctx(nsp=True, windows=ctx.windows, seed=1))
  assert not np.array_equal(other_seed['inputs'], whole['inputs'])


def test_next_sentence_pairs():
  pool = _windows(200, 61, seed=7)
  task, ctx = get_task('mlm'), _ctx(nsp=True, windows=pool)
  assert task.window_len(64, ctx.data_cfg) == 61  # [CLS] A [SEP] B [SEP]
  windows = _windows(2000, 61)
  b = task.make_batch(windows, np.arange(2000), ctx)
  assert b['nsp_labels'].shape == (2000,)
  assert abs(b['nsp_labels'].mean() - 0.5) < 4 * np.sqrt(0.25 / 2000)
  for row in range(40):
    t, types = b['targets'][row], b['token_types'][row]
    seps = np.flatnonzero(t == SPECIALS['sep'])
    assert len(seps) == 2 and seps[1] == 63 and t[0] == SPECIALS['cls']
    a_len = seps[0] - 1
    np.testing.assert_array_equal(types, np.arange(64) > seps[0])
    np.testing.assert_array_equal(t[1:seps[0]], windows[row, :a_len])
    rest = t[seps[0] + 1:63]
    if b['nsp_labels'][row] == 0:  # B is A's continuation
      np.testing.assert_array_equal(rest, windows[row, a_len:])
    else:  # B is the same stretch of some other window of the split
      assert any(np.array_equal(rest, p[a_len:]) for p in pool)
      assert not np.array_equal(rest, windows[row, a_len:])
