"""The directories a training run writes must be writable: checked before it starts.

A run writes into its run directory (metrics, tokenizer, checkpoints) and the
token cache. A path that cannot be written would otherwise surface as an
OSError traceback minutes later; this turns it into one ConfigError naming the
path and the config key that sets it.
"""

import os
import tempfile

import ml_collections

from lm_jax.data.pipeline import default_cache_dir
from lm_jax.errors import ConfigError


def _check_dir(path: str, what: str):
  """Raises ConfigError unless `path` is, or can be made, a writable directory."""
  probe = os.path.abspath(path)
  while not os.path.lexists(probe):  # the nearest existing ancestor
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise ConfigError(f'{what} {path!r} cannot be created: {probe} is not a '
                      'directory; choose another path')
  try:  # a real write: permission bits say nothing to root or on read-only mounts
    with tempfile.TemporaryFile(dir=probe):
      pass
  except OSError as e:
    raise ConfigError(f'{what} {path!r} is not writable ({e.strerror} in {probe}); '
                      'make it writable or choose another path') from e


def check_writable(config: ml_collections.ConfigDict):
  """Checks the run dir, its checkpoints dir and the token cache dir of `config`."""
  run_dir, cache_dir = config.logging.run_dir, config.data.cache_dir
  if not (isinstance(run_dir, str) and run_dir and isinstance(cache_dir, str)):
    return  # validation names the bad value
  _check_dir(run_dir, 'config.logging.run_dir')
  _check_dir(os.path.join(run_dir, 'checkpoints'),
             'the checkpoint directory (config.logging.run_dir)')
  if cache_dir:
    _check_dir(cache_dir, 'config.data.cache_dir')
  else:
    _check_dir(default_cache_dir(run_dir),
               'the token cache (config.data.cache_dir=\'\', next to the run dir)')
