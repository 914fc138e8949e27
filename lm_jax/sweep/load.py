"""Reading a sweep file and checking its overrides against its config before anything runs."""

import copy
import hashlib
import importlib.util
import os
import sys

from lm_jax.config.loader import apply_overrides, load_config
from lm_jax.errors import ConfigError, user_code_error
from lm_jax.sweep.spec import Sweep, SweepRun


def load_sweep(path: str) -> Sweep:
  """Imports the sweep file at `path` and returns what its get_sweep() returns."""
  if not os.path.isfile(path):
    raise ConfigError(f'sweep file not found: {path!r} (relative paths are from {os.getcwd()})')
  if not path.endswith('.py'):
    raise ConfigError(f'sweep file {path!r} is not a python file (.py) with a get_sweep()')
  abspath = os.path.abspath(path)
  stem = os.path.splitext(os.path.basename(path))[0]
  module_name = f'_lm_jax_sweep_{stem}_{hashlib.sha1(abspath.encode()).hexdigest()[:8]}'
  spec = importlib.util.spec_from_file_location(module_name, abspath)
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module  # dataclasses defined in the file need it
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    sys.modules.pop(module_name, None)
    raise ConfigError(f'syntax error in sweep file {path!r}, line {e.lineno}: {e.msg}') from e
  except Exception as e:  # the file's own code failed: say where, no traceback
    sys.modules.pop(module_name, None)
    raise user_code_error('sweep file', path, e) from e
  get_sweep = getattr(module, 'get_sweep', None)
  if not callable(get_sweep):
    raise ConfigError(f'sweep file {path!r} has no get_sweep() function; a sweep file defines '
                      '`def get_sweep() -> lm_jax.sweep.Sweep`')
  try:
    sweep = get_sweep()
  except Exception as e:
    raise user_code_error('sweep file', path, e) from e
  if not isinstance(sweep, Sweep):
    raise ConfigError(f'sweep file {path!r}: get_sweep() returned {type(sweep).__name__}, '
                      'expected an lm_jax.sweep.Sweep')
  return sweep


def check_runs(sweep: Sweep, runs: list[SweepRun]) -> dict[str, int]:
  """Applies every run's overrides to the sweep's config; returns each run's train.steps.

  Unknown keys and values of the wrong type fail here, before anything runs;
  checks that need the devices (mesh, divisibility) are left to each run.
  """
  try:
    base = load_config(sweep.config)
  except ConfigError as e:
    raise ConfigError(f'sweep {sweep.name!r}: {e}') from None
  steps = {}
  for run in runs:
    try:
      steps[run.name] = apply_overrides(copy.deepcopy(base), run.overrides).train.steps
    except ConfigError as e:
      raise ConfigError(f'sweep {sweep.name!r}, run {run.name!r}: {e}') from None
  return steps
