"""Resuming is exact: a run killed after checkpoint N and restarted with the
same command ends with the params and losses of an uninterrupted run."""

import os
import shutil
import signal
import subprocess
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from lm_jax.metrics.writers import read_jsonl
from tests.run_helpers import QUICK, ROOT, cli_env, lm_jax_cmd, run_cli, tiny_overrides

N = 6


def _params(run_dir, step):
  path = os.path.join(run_dir, 'checkpoints', str(step), 'state')
  tree = ocp.StandardCheckpointer().restore(path)
  return tree['params'], tree['opt_state']


def _losses(run_dir):
  by_step = {}
  for row in read_jsonl(os.path.join(run_dir, 'metrics.jsonl')):
    if 'train/loss' in row:
      by_step[row['step']] = row['train/loss']  # a resumed step overwrites
  return by_step


def _assert_same_tree(a, b):
  import jax
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a),
                          jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y),
                                  err_msg=jax.tree_util.keystr(path))


def _wait_for(path, proc, timeout=180):
  deadline = time.time() + timeout
  while not os.path.isdir(path):
    assert proc.poll() is None, proc.communicate()
    assert time.time() < deadline, f'{path} never appeared'
    time.sleep(0.05)


@pytest.fixture(scope='module')
def straight_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('straight') / 'run')
  flags = tiny_overrides(run_dir, 2 * N, **{'checkpoint.every': N,
                                            'train.log_every': 1})
  done = run_cli('train', '--config', QUICK, *flags)
  assert done.returncode == 0, done.stderr
  return run_dir, flags


def test_killed_then_resumed_equals_straight_run(straight_run, tmp_path):
  ref_dir, _ = straight_run
  run_dir = str(tmp_path / 'run')
  flags = tiny_overrides(run_dir, 2 * N, **{'checkpoint.every': N,
                                            'train.log_every': 1})
  proc = subprocess.Popen(lm_jax_cmd('train', '--config', QUICK, *flags),
                          env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  _wait_for(os.path.join(run_dir, 'checkpoints', str(N)), proc)
  proc.send_signal(signal.SIGKILL)  # no chance to clean up
  proc.wait()
  # Simulate the crash landing right after checkpoint N: drop anything later.
  for name in os.listdir(os.path.join(run_dir, 'checkpoints')):
    if not name.isdigit() or int(name) > N:
      shutil.rmtree(os.path.join(run_dir, 'checkpoints', name))

  resumed = run_cli('train', '--config', QUICK, *flags)  # the same command
  assert resumed.returncode == 0, resumed.stderr
  assert f'resumed from step {N}' in resumed.stderr

  ref_params, ref_opt = _params(ref_dir, 2 * N)
  params, opt = _params(run_dir, 2 * N)
  _assert_same_tree(ref_params, params)
  _assert_same_tree(ref_opt, opt)
  ref_losses, losses = _losses(ref_dir), _losses(run_dir)
  assert [losses[s] for s in range(1, 2 * N + 1)] == \
         [ref_losses[s] for s in range(1, 2 * N + 1)]


def test_sigterm_saves_and_resume_matches(straight_run, tmp_path):
  ref_dir, _ = straight_run
  run_dir = str(tmp_path / 'run')
  # No periodic checkpoints: the only mid-run checkpoint is SIGTERM's.
  flags = tiny_overrides(run_dir, 2 * N, **{'checkpoint.every': 0,
                                            'train.log_every': 1})
  proc = subprocess.Popen(lm_jax_cmd('train', '--config', QUICK, *flags),
                          env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  jsonl = os.path.join(run_dir, 'metrics.jsonl')
  deadline = time.time() + 180
  while not (os.path.exists(jsonl) and _losses(run_dir)):
    assert proc.poll() is None and time.time() < deadline, proc.communicate()
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err
  assert 'SIGTERM received' in err
  saved = [int(s) for s in os.listdir(os.path.join(run_dir, 'checkpoints'))
           if s.isdigit()]
  assert len(saved) == 1 and 1 <= saved[0] <= 2 * N

  if saved[0] < 2 * N:
    resumed = run_cli('train', '--config', QUICK, *flags)
    assert resumed.returncode == 0, resumed.stderr
  _assert_same_tree(_params(ref_dir, 2 * N)[0], _params(run_dir, 2 * N)[0])


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  run_dir = str(tmp_path / 'run')
  # An absurd learning rate without clipping blows the loss up within steps.
  flags = tiny_overrides(run_dir, 40, **{
      'checkpoint.every': 1, 'checkpoint.async_save': False,
      'train.log_every': 1, 'optimizer.lr': 1e12, 'optimizer.grad_clip': 0.0,
      'optimizer.warmup_steps': 0, 'train.eval_every': 0})
  done = run_cli('train', '--config', QUICK, *flags)
  assert done.returncode == 1, done.stderr
  assert 'non-finite training metrics at step' in done.stderr
  steps = sorted(int(s) for s in os.listdir(os.path.join(run_dir, 'checkpoints'))
                 if s.isdigit())
  assert f'last good checkpoint is step {steps[-1]}' in done.stderr
  params, _ = _params(run_dir, steps[-1])
  import jax
  assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(params))
