"""A damaged latest checkpoint: the CLI names the step and the file, keeps the
damaged files, and falls back to the checkpoint before it. `train` moves the
damaged step to checkpoints_damaged/ and then ends exactly where an undamaged
run ends; `eval` leaves it in place."""

import glob
import json
import os
import shutil

import pytest

from lm_jax.checkpoint_recovery import newest_readable, set_aside
from tests.run_helpers import (QUICK, assert_same_tree, logged_train_losses, run_cli,
                               saved_params, tiny_overrides)

N = 3  # checkpoints at N and 2N; 2N is damaged


def _flags(run_dir):
  return tiny_overrides(run_dir, 2 * N, **{
      'checkpoint.every': N, 'train.log_every': 1, 'train.eval_every': 0})


@pytest.fixture(scope='module')
def pristine_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('pristine') / 'run')
  done = run_cli('train', '--config', QUICK, *_flags(run_dir))
  assert done.returncode == 0, done.stderr
  return run_dir


def _copy(pristine, tmp_path):
  run_dir = str(tmp_path / 'run')
  shutil.copytree(pristine, run_dir)
  shutil.copytree(os.path.join(os.path.dirname(pristine), 'cache'),
                  str(tmp_path / 'cache'))
  return run_dir


def _truncate(path):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:len(data) // 2])


def _not_utf8(path):
  with open(path, 'rb') as f:
    data = f.read()
  with open(path, 'wb') as f:
    f.write(data[:5] + b'\xff\xfe' + data[7:])


def _largest_array_file(step_dir):
  files = glob.glob(os.path.join(step_dir, 'state', 'ocdbt.process_0', 'd', '*'))
  return max(files, key=os.path.getsize)


# (what is damaged, how, the file the message must name; relative to the step)
DAMAGE = {
    'config_truncated': (lambda d: os.path.join(d, 'config', 'metadata'), _truncate),
    'state_array_truncated': (_largest_array_file, _truncate),
    'data_iter_not_utf8': (lambda d: os.path.join(d, 'data_iter', 'metadata'), _not_utf8),
    'state_metadata_truncated': (lambda d: os.path.join(d, 'state', '_METADATA'), _truncate),
    'array_metadata_truncated': (
        lambda d: os.path.join(d, 'state', 'array_metadatas', 'process_0'), _truncate),
    'loop_state_emptied': (lambda d: os.path.join(d, 'loop', 'metadata'),
                           lambda p: open(p, 'w').close()),
}
# The default run trains through one kind (TensorStore's error path); the JSON
# path is also met by the all-damaged test below.
SLOW_KINDS = ('config_truncated', 'data_iter_not_utf8', 'state_metadata_truncated',
              'array_metadata_truncated', 'loop_state_emptied')


def _damage(run_dir, kind):
  """Damages checkpoint 2N; returns (damaged file relative to the step dir, its bytes)."""
  step_dir = os.path.join(run_dir, 'checkpoints', str(2 * N))
  locate, spoil = DAMAGE[kind]
  path = locate(step_dir)
  spoil(path)
  with open(path, 'rb') as f:
    return os.path.relpath(path, step_dir), f.read()


@pytest.mark.parametrize('kind', [
    pytest.param(k, marks=pytest.mark.slow) if k in SLOW_KINDS else k for k in DAMAGE])
def test_train_sets_damaged_step_aside_and_resumes_like_a_straight_run(
    pristine_run, tmp_path, kind):
  run_dir = _copy(pristine_run, tmp_path)
  rel, damaged_bytes = _damage(run_dir, kind)

  done = run_cli('train', '--config', QUICK, *_flags(run_dir))  # the same command again
  assert done.returncode == 0, done.stderr
  assert 'Traceback' not in done.stderr
  assert f'checkpoint {2 * N} is damaged' in done.stderr
  assert os.path.join(str(2 * N), rel) in done.stderr  # names the file
  assert f'resumed from step {N}' in done.stderr
  # Nothing damaged is lost: it moved, byte for byte, out of Orbax's reach.
  with open(os.path.join(run_dir, 'checkpoints_damaged', str(2 * N), rel), 'rb') as f:
    assert f.read() == damaged_bytes
  # Step 2N was trained and saved again, identical to the undamaged run's.
  ref_params, ref_opt = saved_params(pristine_run, 2 * N)
  params, opt = saved_params(run_dir, 2 * N)
  assert_same_tree(ref_params, params)
  assert_same_tree(ref_opt, opt)
  ref, got = logged_train_losses(pristine_run), logged_train_losses(run_dir)
  assert [got[s] for s in range(1, 2 * N + 1)] == [ref[s] for s in range(1, 2 * N + 1)]


def test_eval_falls_back_and_refuses_an_explicit_damaged_step(pristine_run, tmp_path):
  run_dir = _copy(pristine_run, tmp_path)
  rel, damaged_bytes = _damage(run_dir, 'state_array_truncated')
  flags = _flags(run_dir)

  newest = run_cli('eval', '--config', QUICK, *flags)
  assert newest.returncode == 0, newest.stderr
  assert f'checkpoint {2 * N} is damaged' in newest.stderr
  assert os.path.join(str(2 * N), rel) in newest.stderr
  assert json.loads(newest.stdout)['step'] == N
  reference = run_cli('eval', '--config', QUICK, *_flags(pristine_run), '--step', str(N))
  assert reference.returncode == 0, reference.stderr
  assert json.loads(newest.stdout) == json.loads(reference.stdout)

  explicit = run_cli('eval', '--config', QUICK, *flags, '--step', str(2 * N))
  assert explicit.returncode == 2
  assert f'--step {2 * N}: checkpoint {2 * N} is damaged' in explicit.stderr
  assert 'Traceback' not in explicit.stderr
  # eval moves nothing: the damaged file is where it was.
  path = os.path.join(run_dir, 'checkpoints', str(2 * N), rel)
  with open(path, 'rb') as f:
    assert f.read() == damaged_bytes
  assert not os.path.exists(os.path.join(run_dir, 'checkpoints_damaged'))


def test_every_checkpoint_damaged_is_refused_with_what_to_do(pristine_run, tmp_path):
  run_dir = _copy(pristine_run, tmp_path)
  for step in (N, 2 * N):
    _truncate(os.path.join(run_dir, 'checkpoints', str(step), 'config', 'metadata'))
  done = run_cli('train', '--config', QUICK, *_flags(run_dir))
  assert done.returncode == 2, done.stderr
  assert 'no readable checkpoint' in done.stderr
  assert 'Run the same command again to start from step 0' in done.stderr
  assert 'Traceback' not in done.stderr
  assert sorted(os.listdir(os.path.join(run_dir, 'checkpoints_damaged'))) == \
         sorted([str(N), str(2 * N)])


class _FakeCheckpointer:
  def __init__(self, directory):
    self.directory, self.reloads = directory, 0

  def reload(self):
    self.reloads += 1


def test_a_step_damaged_twice_keeps_both_copies(tmp_path):
  ckpt = _FakeCheckpointer(str(tmp_path / 'checkpoints'))
  for content in ('first', 'second'):
    os.makedirs(os.path.join(ckpt.directory, '7'))
    with open(os.path.join(ckpt.directory, '7', 'f'), 'w') as f:
      f.write(content)
    set_aside(ckpt, 7)
  damaged = tmp_path / 'checkpoints_damaged'
  assert (damaged / '7' / 'f').read_text() == 'first'
  assert (damaged / '7.1' / 'f').read_text() == 'second'
  assert not os.path.exists(os.path.join(ckpt.directory, '7'))
  assert ckpt.reloads == 2


def test_an_error_that_no_file_explains_is_raised_not_taken_for_damage(pristine_run):
  ckpt = _FakeCheckpointer(os.path.join(pristine_run, 'checkpoints'))
  ckpt.all_steps = lambda: [N, 2 * N]

  def read(step):
    raise RuntimeError(f'a bug, not damage, at {step}')

  with pytest.raises(RuntimeError, match=f'a bug, not damage, at {2 * N}'):
    newest_readable(ckpt, read, move=True)
  assert sorted(os.listdir(os.path.join(pristine_run, 'checkpoints'))) == \
         sorted([str(N), str(2 * N)])
