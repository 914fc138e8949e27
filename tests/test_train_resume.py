"""Resuming is exact: a run killed after checkpoint N and restarted with the
same command ends with the params and losses of an uninterrupted run."""

import glob
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from tests.run_helpers import (QUICK, ROOT, assert_same_tree, cli_env, lm_jax_cmd,
                               logged_train_losses, run_cli, saved_params,
                               tiny_overrides)

N = 6


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


def _plant_partial_save(ref_dir, run_dir, step):
  """Leaves what a crash in the middle of saving `step` leaves: Orbax's
  temporary directory, half written (no commit markers, half the state)."""
  tmp = os.path.join(run_dir, 'checkpoints', f'{step}.orbax-checkpoint-tmp-1700000000')
  shutil.copytree(os.path.join(ref_dir, 'checkpoints', str(step)), tmp)
  for marker in glob.glob(os.path.join(tmp, '**', 'commit_success.txt'), recursive=True):
    os.remove(marker)
  arrays = sorted(glob.glob(os.path.join(tmp, 'state', '**', 'd', '*'), recursive=True))
  for path in arrays[len(arrays) // 2:]:
    os.remove(path)
  return tmp


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
  # Simulate the crash landing while step 2N was being saved: no finished
  # checkpoint after N, and the temporary directory of 2N left behind.
  for name in os.listdir(os.path.join(run_dir, 'checkpoints')):
    if name.isdigit() and int(name) > N:
      shutil.rmtree(os.path.join(run_dir, 'checkpoints', name))
  partial = _plant_partial_save(ref_dir, run_dir, 2 * N)

  resumed = run_cli('train', '--config', QUICK, *flags)  # the same command
  assert resumed.returncode == 0, resumed.stderr
  assert f'resumed from step {N}' in resumed.stderr
  assert 'damaged' not in resumed.stderr  # a partial save is no checkpoint
  assert os.path.isdir(partial)  # left alone, not read

  ref_params, ref_opt = saved_params(ref_dir, 2 * N)
  params, opt = saved_params(run_dir, 2 * N)
  assert_same_tree(ref_params, params)
  assert_same_tree(ref_opt, opt)
  ref_losses, losses = logged_train_losses(ref_dir), logged_train_losses(run_dir)
  assert [losses[s] for s in range(1, 2 * N + 1)] == \
         [ref_losses[s] for s in range(1, 2 * N + 1)]


def test_sigterm_saves_and_resume_matches(tmp_path):
  # The schedule must not depend on train.steps: the stopped run, its resume
  # and the reference each give a different one.
  common = {'checkpoint.every': 2, 'train.log_every': 1, 'train.eval_every': 0,
            'optimizer.decay_steps': 40}
  run_dir, ref_dir = str(tmp_path / 'run'), str(tmp_path / 'ref')
  never_ends = 10**6  # so SIGTERM, not the step count, ends the run
  proc = subprocess.Popen(
      lm_jax_cmd('train', '--config', QUICK, *tiny_overrides(run_dir, never_ends, **common)),
      env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      text=True)
  try:
    _wait_for(os.path.join(run_dir, 'checkpoints', '2'), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, err
  assert 'SIGTERM received' in err
  stopped = re.search(r'stopped by SIGTERM at step (\d+)', err)
  assert stopped, err
  k = int(stopped.group(1))
  saved = sorted(int(s) for s in os.listdir(os.path.join(run_dir, 'checkpoints'))
                 if s.isdigit())
  assert 2 <= k < never_ends and saved[-1] == k  # SIGTERM's own checkpoint

  end = k + 3
  resumed = run_cli('train', '--config', QUICK, *tiny_overrides(run_dir, end, **common))
  assert resumed.returncode == 0, resumed.stderr
  assert f'resumed from step {k}' in resumed.stderr
  straight = run_cli('train', '--config', QUICK, *tiny_overrides(ref_dir, end, **common))
  assert straight.returncode == 0, straight.stderr
  assert_same_tree(saved_params(ref_dir, end)[0], saved_params(run_dir, end)[0])
  ref_losses, losses = logged_train_losses(ref_dir), logged_train_losses(run_dir)
  assert [losses[s] for s in range(1, end + 1)] == [ref_losses[s] for s in range(1, end + 1)]


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
  params, _ = saved_params(run_dir, steps[-1])
  import jax
  assert all(np.isfinite(np.asarray(p)).all() for p in jax.tree.leaves(params))
