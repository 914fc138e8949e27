"""Launching `lm-jax` in a subprocess with a tiny config, for end-to-end tests."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, 'configs', 'quickstart.py') + ':runlocal'


def tiny_overrides(run_dir, steps, **extra):
  """Flags for a few-second CPU run on 1 device with its own token cache."""
  flags = {
      'logging.run_dir': run_dir, 'train.steps': steps,
      'data.cache_dir': os.path.join(os.path.dirname(run_dir), 'cache'),
      'logging.progress': False, 'logging.tensorboard': True,
      'checkpoint.async_save': True,
  }
  flags.update(extra)
  return [f'--config.{k}={v}' for k, v in flags.items()]


def cli_env(devices: int = 1):
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT,
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return env


def lm_jax_cmd(*args):
  return [sys.executable, '-m', 'lm_jax.cli', *args]


def run_cli(*args, devices: int = 1, timeout: int = 240):
  """Runs `lm-jax ARGS` to completion; returns the CompletedProcess."""
  return subprocess.run(lm_jax_cmd(*args), env=cli_env(devices), cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout)


def saved_params(run_dir, step):
  """(params, opt_state) of <run_dir>/checkpoints/<step>, read with plain Orbax."""
  import orbax.checkpoint as ocp
  path = os.path.join(run_dir, 'checkpoints', str(step), 'state')
  tree = ocp.StandardCheckpointer().restore(path)
  return tree['params'], tree['opt_state']


def logged_train_losses(run_dir):
  """{step: train/loss} from metrics.jsonl; a resumed step's row overwrites."""
  from lm_jax.metrics.writers import read_jsonl
  return {row['step']: row['train/loss']
          for row in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
          if 'train/loss' in row}


def assert_same_tree(a, b):
  """Every leaf of `a` equals the matching leaf of `b` exactly."""
  import jax
  import numpy as np
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y),
                                  err_msg=jax.tree_util.keystr(path))


def tree_digest(root):
  """sha256 over every file's relative path and bytes under `root` ('' if it does not exist)."""
  import hashlib
  if not os.path.exists(root):
    return ''
  h = hashlib.sha256()
  for folder, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    h.update(os.path.relpath(folder, root).encode() + b'/')
    for name in sorted(files):
      path = os.path.join(folder, name)
      h.update(os.path.relpath(path, root).encode())
      with open(path, 'rb') as f:
        h.update(f.read())
  return h.hexdigest()
