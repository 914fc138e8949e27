"""A run directory or token cache that cannot be written: one message naming the
path, exit 2, before any work (not an OSError traceback minutes later)."""

import os
import tempfile

import pytest

from lm_jax.config.defaults import base_config
from lm_jax.errors import ConfigError
from lm_jax.train.output_dirs import check_writable
from tests.run_helpers import QUICK, run_cli, tiny_overrides


def _a_file(tmp_path):
  path = tmp_path / 'not_a_dir'
  path.write_text('a file, so nothing can be created below it (even by root)')
  return str(path)


@pytest.mark.parametrize('key', ['logging.run_dir', 'data.cache_dir'])
def test_unwritable_path_exits_2_naming_it(tmp_path, key):
  bad = os.path.join(_a_file(tmp_path), 'below')
  flags = tiny_overrides(str(tmp_path / 'run'), 2, **{key: bad})
  done = run_cli('train', '--config', QUICK, *flags)
  assert done.returncode == 2, done.stderr
  assert 'Traceback' not in done.stderr
  assert f'config.{key}' in done.stderr and bad in done.stderr


def _config(run_dir, cache_dir=''):
  c = base_config()
  c.logging.run_dir, c.data.cache_dir = run_dir, cache_dir
  return c


@pytest.fixture
def read_only_dir(tmp_path):
  """A directory this process cannot create files in."""
  if os.geteuid() != 0:
    path = tmp_path / 'read_only'
    path.mkdir()
    os.chmod(path, 0o500)
    yield str(path)
    os.chmod(path, 0o700)
    return
  # Root writes through permission bits; sysfs refuses new files even to root.
  try:
    with tempfile.TemporaryFile(dir='/sys'):
      pass
  except OSError:
    yield '/sys'
    return
  pytest.skip('running as root with no directory root cannot write to')


def test_read_only_run_dir_exits_2_naming_it(tmp_path, read_only_dir):
  run_dir = os.path.join(read_only_dir, 'run')
  flags = tiny_overrides(run_dir, 2, **{'data.cache_dir': str(tmp_path / 'cache')})
  done = run_cli('train', '--config', QUICK, *flags)
  assert done.returncode == 2, done.stderr
  assert 'Traceback' not in done.stderr
  assert f"config.logging.run_dir '{run_dir}' is not writable" in done.stderr


def test_checkpoints_path_that_is_a_file_is_refused(tmp_path):
  run_dir = tmp_path / 'run'
  run_dir.mkdir()
  (run_dir / 'checkpoints').write_text('not a directory')
  with pytest.raises(ConfigError, match='checkpoint directory'):
    check_writable(_config(str(run_dir), str(tmp_path / 'cache')))


def test_writable_paths_pass_and_nothing_is_created(tmp_path):
  run_dir = tmp_path / 'new' / 'run'
  check_writable(_config(str(run_dir)))  # the default cache: next to the run dir
  check_writable(_config(str(run_dir), str(tmp_path / 'cache')))
  assert os.listdir(tmp_path) == []
