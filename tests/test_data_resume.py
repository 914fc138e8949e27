"""Resuming on other data than the checkpoint's is refused with the differences (nothing in
the run dir changes), or, with checkpoint.allow_new_data, continues the saved params on a
fresh iterator; checkpoints written before data fingerprints are checked on their config."""

import json
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lm_jax import launch
from lm_jax.checkpoint import Checkpointer
from lm_jax.config import ConfigError, apply_overrides, load_config
from lm_jax.data import pipeline
from lm_jax.train import loop
from lm_jax.train.early_stopping import MetricWatch
from lm_jax.run import build_run
from tests.run_helpers import QUICK, run_cli, tiny_overrides

N = 3  # steps of the saved run


def _corpus_text(seed):
  rng = np.random.default_rng(seed)
  return ''.join(rng.choice(list('abcdefghij klmnop\n'), size=60_000))


@pytest.fixture(scope='module')
def saved_run(tmp_path_factory):
  """A run with a checkpoint at step N, on a file corpus; returns (run_dir, base flags)."""
  root = tmp_path_factory.mktemp('resume_data')
  corpus = root / 'corpus.txt'
  corpus.write_text(_corpus_text(0))
  run_dir = str(root / 'run')
  base = {'data.source': str(corpus), 'data.max_bytes': 0, 'train.global_batch_size': 8,
          'checkpoint.every': N, 'checkpoint.async_save': False, 'train.eval_every': 0}
  done = run_cli('train', '--config', QUICK, *tiny_overrides(run_dir, N, **base))
  assert done.returncode == 0, done.stderr
  return run_dir, base


def _config(run_dir, steps, flags):
  c = load_config(QUICK)
  apply_overrides(c, tiny_overrides(run_dir, steps, **flags))
  return c


def _snapshot(run_dir):
  """Every file under run_dir with its size and mtime."""
  out = {}
  for dirpath, _, files in os.walk(run_dir):
    for name in files:
      st = os.stat(os.path.join(dirpath, name))
      out[os.path.relpath(os.path.join(dirpath, name), run_dir)] = (st.st_size, st.st_mtime_ns)
  return out


@pytest.mark.parametrize('key, value, line', [
    ('data.val_fraction', 0.2, 'data.val_fraction: saved 0.1, now 0.2'),
    ('data.test_fraction', 0.0, 'data.test_fraction: saved 0.05, now 0.0'),
    ('data.seq_len', 16, 'data.seq_len: saved 32, now 16'),
    ('train.global_batch_size', 16, 'train.global_batch_size: saved 8, now 16'),
    ('data.seed', 1, 'data.seed: saved 0, now 1'),
    ('data.max_bytes', 40_000, 'data.max_bytes: saved 0, now 40000'),
])
def test_resume_on_other_data_is_refused_and_changes_nothing(saved_run, key, value, line):
  run_dir, base = saved_run
  before = _snapshot(run_dir)
  with pytest.raises(ConfigError) as e:
    launch.train(_config(run_dir, 2 * N, {**base, key: value}))
  assert line in str(e.value)
  assert '--config.checkpoint.allow_new_data=True' in str(e.value)
  assert _snapshot(run_dir) == before


def test_resume_on_rewritten_corpus_is_refused(saved_run):
  run_dir, base = saved_run
  corpus = base['data.source']
  original = open(corpus).read()
  before = _snapshot(run_dir)
  try:
    with open(corpus, 'w') as f:
      f.write(_corpus_text(1))  # same size, other text
    with pytest.raises(ConfigError, match=r'corpus content .*: saved .*, now') as e:
      launch.train(_config(run_dir, 2 * N, base))
    assert '--config.checkpoint.allow_new_data=True' in str(e.value)
  finally:
    with open(corpus, 'w') as f:
      f.write(original)
  assert _snapshot(run_dir) == before


def test_refusal_from_the_command_line_exits_2(saved_run):
  run_dir, base = saved_run
  done = run_cli('train', '--config', QUICK,
                 *tiny_overrides(run_dir, 2 * N, **{**base, 'data.seq_len': 16}))
  assert done.returncode == 2, done.stderr
  assert 'data.seq_len: saved 32, now 16' in done.stderr
  assert 'allow_new_data' in done.stderr and 'Traceback' not in done.stderr
  assert sorted(os.listdir(os.path.join(run_dir, 'checkpoints'))) == [str(N)]


def _saved_params(run_dir, step):
  tree = ocp.StandardCheckpointer().restore(os.path.join(run_dir, 'checkpoints', str(step),
                                                         'state'))
  return tree


def test_allow_new_data_keeps_params_and_step_and_restarts_the_iterator(saved_run):
  run_dir, base = saved_run
  flags = {**base, 'data.seed': 7, 'checkpoint.allow_new_data': True}
  run = build_run(_config(run_dir, 2 * N, flags))
  ckpt = Checkpointer(run_dir, run.config.checkpoint, run.data.fingerprint)
  state = loop._initial_state(run, ckpt, MetricWatch.from_config(run.config.train))
  ckpt.close()
  saved = _saved_params(run_dir, N)
  assert int(state.step) == N
  for want, got in zip(jax.tree.leaves(saved['params']), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  for want, got in zip(jax.tree.leaves(saved['opt_state']), jax.tree.leaves(state.opt_state)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  # The iterator is a new one at batch 0 of the new data (seed 7), not at batch N.
  fresh = pipeline.build_data(run.config.data, global_batch_size=8, run_dir=run_dir,
                              resuming=True)
  np.testing.assert_array_equal(next(run.data.train_iter)['inputs'],
                                next(fresh.train_iter)['inputs'])


@pytest.mark.slow  # ~25 s; the decision itself is checked in-process above
def test_allow_new_data_trains_on_from_the_command_line(saved_run, tmp_path):
  run_dir, base = saved_run
  copy = str(tmp_path / 'run')
  shutil.copytree(run_dir, copy)
  flags = {**base, 'data.seed': 7, 'checkpoint.allow_new_data': True}
  done = run_cli('train', '--config', QUICK, *tiny_overrides(copy, 2 * N, **flags))
  assert done.returncode == 0, done.stderr
  assert f'resumed from step {N}' in done.stderr and 'data.seed: saved 0, now 7' in done.stderr
  with open(os.path.join(copy, 'checkpoints', str(2 * N), 'data_iter', 'metadata')) as f:
    position = json.load(f)
  assert position == {'next_index': N}  # N batches of a fresh iterator, not 2N
  with open(os.path.join(copy, 'checkpoints', str(2 * N), 'data_fingerprint', 'metadata')) as f:
    assert json.load(f)['data.seed'] == 7  # later resumes compare against the new data


def test_checkpoint_without_fingerprint_is_checked_on_its_config(saved_run, tmp_path):
  run_dir, base = saved_run
  copy = str(tmp_path / 'run')
  shutil.copytree(run_dir, copy)
  shutil.rmtree(os.path.join(copy, 'checkpoints', str(N), 'data_fingerprint'))  # older lm_jax
  with pytest.raises(ConfigError, match='data.seq_len: saved 32, now 16'):
    launch.train(_config(copy, 2 * N, {**base, 'data.seq_len': 16}))
  run = build_run(_config(copy, 2 * N, base))
  ckpt = Checkpointer(copy, run.config.checkpoint, run.data.fingerprint)
  state = loop._initial_state(run, ckpt, MetricWatch.from_config(run.config.train))  # the same config: resumes, iterator at batch N
  ckpt.close()
  assert int(state.step) == N and run.data.train_iter.get_state() == {'next_index': N}
