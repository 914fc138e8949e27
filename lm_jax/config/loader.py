"""Loading python config files and applying command-line overrides.

    config, rest = parse_cli_config(['--config', 'configs/quickstart.py',
                                     '--config.train.steps=100'])

A config file is a python file with `get_config(arg=None) -> ConfigDict`;
`path.py:arg` calls `get_config('arg')` (big_vision style). Overrides are
`--config.section.key=value` or `--config.section.key value`; the value is
parsed to the type of the existing field. A loaded config is locked: a
misspelt key is an error, never a silently added field.

Every user mistake raises ConfigError, whose message is meant to be printed as
is (no traceback); `exit_on_config_error` does that for a CLI entry point.
"""

import ast
import difflib
import functools
import hashlib
import importlib.util
import inspect
import os
import sys

import ml_collections

from lm_jax.errors import ConfigError  # re-exported: the config layer's error
from lm_jax.errors import user_code_error

_PREFIX = 'config.'
_TRUE = ('true', '1', 'yes', 'y', 'on')
_FALSE = ('false', '0', 'no', 'n', 'off')
USAGE = ('lm-jax train --config configs/quickstart.py '
         '[--config.train.steps=100 --config.model.num_layers 2 ...]')




def exit_on_config_error(fn):
  """Decorator for CLI entry points: ConfigError -> message on stderr, exit 2."""
  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    try:
      return fn(*args, **kwargs)
    except ConfigError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
  return wrapper


# ---------------------------------------------------------------------------
# Loading


def _split_arg(path: str):
  """'configs/x.py:small' -> ('configs/x.py', 'small'); no ':arg' -> (path, None)."""
  base, sep, arg = path.rpartition(':')
  if sep and base.endswith('.py') and '/' not in arg and os.sep not in arg:
    return base, arg
  return path, None


def _missing_file_message(file: str) -> str:
  msg = f'config file not found: {file!r} (relative paths are from {os.getcwd()})'
  folder = os.path.dirname(file) or '.'
  if os.path.isdir(folder):
    candidates = sorted(f for f in os.listdir(folder) if f.endswith('.py'))
    close = difflib.get_close_matches(os.path.basename(file), candidates, n=3)
    if close:
      msg += '; did you mean ' + ' or '.join(
          repr(os.path.join(os.path.dirname(file), c)) for c in close) + '?'
    elif candidates:
      msg += f'; config files in {folder!r}: ' + ', '.join(candidates)
  return msg


def load_config(path: str) -> ml_collections.ConfigDict:
  """Imports the config file at `path` (optionally 'file.py:arg'), returns its locked config."""
  file, arg = _split_arg(path)
  if not os.path.isfile(file):
    raise ConfigError(_missing_file_message(file))
  if not file.endswith('.py'):
    raise ConfigError(f'config file {file!r} is not a python file (.py) with a get_config()')

  abspath = os.path.abspath(file)
  digest = hashlib.sha1(abspath.encode()).hexdigest()[:8]
  stem = os.path.splitext(os.path.basename(file))[0]
  module_name = f'_lm_jax_config_{stem}_{digest}'
  spec = importlib.util.spec_from_file_location(module_name, abspath)
  if spec is None or spec.loader is None:
    raise ConfigError(f'cannot import config file {file!r}')
  module = importlib.util.module_from_spec(spec)
  sys.modules[module_name] = module  # so dataclasses/pickle inside the file work
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    sys.modules.pop(module_name, None)
    raise ConfigError(f'syntax error in config file {file!r}, line {e.lineno}: {e.msg}') from e
  except Exception as e:  # the file's own code failed: say where, no traceback
    sys.modules.pop(module_name, None)
    raise user_code_error('config file', file, e) from e

  get_config = getattr(module, 'get_config', None)
  if not callable(get_config):
    raise ConfigError(
        f'config file {file!r} has no get_config() function; a config file defines '
        '`def get_config(arg=None) -> ml_collections.ConfigDict`')
  if arg is not None:
    try:
      inspect.signature(get_config).bind(arg)
    except TypeError:
      raise ConfigError(
          f'config file {file!r}: get_config() takes no argument, but {path!r} passes '
          f'{arg!r}; drop the ":{arg}"') from None
  try:
    config = get_config() if arg is None else get_config(arg)
  except Exception as e:
    raise user_code_error('config file', file, e) from e

  if isinstance(config, ml_collections.FrozenConfigDict):
    config = ml_collections.ConfigDict(config)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(
        f'config file {file!r}: get_config() returned {type(config).__name__}, '
        'expected an ml_collections.ConfigDict (start from lm_jax.config.defaults.base_config())')
  config.lock()
  return config


def check_config_arg(arg, allowed, file: str) -> None:
  """For config files: raise ConfigError unless `arg` is None or one of `allowed`."""
  if arg is not None and arg not in allowed:
    raise ConfigError(
        f'config file {os.path.basename(file)!r}: unknown argument {arg!r}; valid: '
        + ', '.join(repr(a) for a in allowed))


# ---------------------------------------------------------------------------
# Overrides


def dotted_keys(config, prefix: str = ''):
  """All leaf keys of a ConfigDict as dotted paths ('model.num_layers', ...)."""
  keys = []
  for k in config.keys():
    v = config[k]
    if isinstance(v, ml_collections.ConfigDict):
      keys.extend(dotted_keys(v, f'{prefix}{k}.'))
    else:
      keys.append(f'{prefix}{k}')
  return keys


def _suggest(key: str, config) -> str:
  """' Did you mean ...?' for an unknown dotted key (without the 'config.' prefix)."""
  keys = dotted_keys(config)
  section, _, leaf = key.rpartition('.')

  def leaf_of(k):
    return k.rpartition('.')[2]

  def section_of(k):
    return k.rpartition('.')[0]

  same_section = [k for k in keys if section_of(k) == section]
  ordered = (
      # the same name in another section ('train.lr' -> 'optimizer.lr')
      [k for k in keys if leaf_of(k) == leaf]
      # a near spelling in the same section ('model.num_layer' -> 'model.num_layers')
      + [k for c in difflib.get_close_matches(leaf, [leaf_of(k) for k in same_section], n=3,
                                              cutoff=0.75)
         for k in same_section if leaf_of(k) == c]
      # a near spelling anywhere ('modle.num_layers', 'optimiser.warmup')
      + difflib.get_close_matches(key, keys, n=3, cutoff=0.8)
      + [k for c in difflib.get_close_matches(leaf, [leaf_of(k) for k in keys], n=3,
                                              cutoff=0.8)
         for k in keys if leaf_of(k) == c])
  suggestions = list(dict.fromkeys(ordered))[:3]
  if suggestions:
    return ' Did you mean ' + ' or '.join(f'--config.{s}' for s in suggestions) + '?'
  sections = [k for k in config.keys() if isinstance(config[k], ml_collections.ConfigDict)]
  if section in sections:
    return f' Keys of config.{section}: ' + ', '.join(leaf_of(k) for k in same_section) + '.'
  return ' Sections: ' + ', '.join(sections) + '.'


def _type_name(value) -> str:
  if isinstance(value, bool):
    return 'bool (true/false/1/0/yes/no)'
  if isinstance(value, int):
    return 'int'
  if isinstance(value, float):
    return 'float'
  if isinstance(value, str):
    return 'str'
  if isinstance(value, (tuple, list)):
    return f'{type(value).__name__} (a python literal such as (1, 2))'
  return type(value).__name__


def parse_value(text: str, current):
  """Parses `text` to the type of `current`; raises ValueError when it cannot."""
  if isinstance(current, bool):
    low = text.strip().lower()
    if low in _TRUE:
      return True
    if low in _FALSE:
      return False
    raise ValueError(text)
  if isinstance(current, int):
    s = text.strip()
    try:
      return int(s)
    except ValueError:
      f = float(s)  # '1e4' is fine for an int field, '2.5' is not
      if f != f or f in (float('inf'), float('-inf')) or not f.is_integer():
        raise
      return int(f)
  if isinstance(current, float):
    return float(text.strip())
  if isinstance(current, str):
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '\'"':
      return text[1:-1]
    return text
  if isinstance(current, (tuple, list)):
    value = ast.literal_eval(text.strip())
    if not isinstance(value, (tuple, list)):
      value = (value,)
    return type(current)(value)
  # None or another type: a python literal, else the string itself.
  try:
    return ast.literal_eval(text.strip())
  except (ValueError, SyntaxError):
    return text


def _split_overrides(overrides):
  """['--config.a=1', 'config.b', '2'] -> [('a', '1', '--config.a=1'), ('b', '2', ...)]."""
  pairs = []
  i = 0
  while i < len(overrides):
    token = overrides[i]
    name = token[2:] if token.startswith('--') else token
    if not name.startswith(_PREFIX):
      raise ConfigError(
          f'bad override {token!r}: overrides look like --config.section.key=value '
          '(e.g. --config.train.steps=100)')
    if '=' in name:
      key, value = name.split('=', 1)
      shown = token
    else:
      key = name
      if i + 1 >= len(overrides) or overrides[i + 1].startswith('--config'):
        raise ConfigError(
            f'override {token!r} has no value: write --{key}=VALUE or --{key} VALUE')
      value = overrides[i + 1]
      shown = f'{token} {value}'
      i += 1
    pairs.append((key[len(_PREFIX):], value, shown))
    i += 1
  return pairs


def apply_overrides(config: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
  """Applies `config.a.b=value` overrides in place (see module doc); returns `config`."""
  for key, text, shown in _split_overrides(list(overrides)):
    parts = key.split('.')
    if not key or any(not p for p in parts):
      raise ConfigError(f'bad override {shown!r}: empty key part in config.{key}')
    node = config
    for depth, part in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise ConfigError(f'unknown config key config.{key} (in {shown!r}).'
                          + _suggest(key, config))
      if depth < len(parts) - 1:
        node = node[part]
    leaf = parts[-1]
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
      example = dotted_keys(current)[:2]
      raise ConfigError(
          f'config.{key} is a section, not a value (in {shown!r}); set one of its keys, '
          'e.g. ' + ', '.join(f'--config.{key}.{e}=...' for e in example))
    try:
      value = parse_value(text, current)
    except (ValueError, SyntaxError):
      raise ConfigError(
          f'bad value for config.{key}: {text!r} is not a valid {_type_name(current)} '
          f'(current value {current!r})') from None
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(
          f'bad value for config.{key}: {text!r} does not fit the field type '
          f'{_type_name(current)} ({e})') from None
  return config


# ---------------------------------------------------------------------------
# Command line


def parse_cli_config(argv):
  """Finds --config PATH and --config.* overrides in argv; returns (config, other args).

  The other args keep their order and are not touched.
  """
  argv = list(argv)
  path = None
  overrides = []
  rest = []
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg == '--':
      rest.extend(argv[i:])
      break
    if arg == '--config' or arg.startswith('--config='):
      if path is not None:
        raise ConfigError(f'--config given twice ({path!r} and {arg!r}); give one config file '
                          'and change values with --config.section.key=value')
      if arg == '--config':
        if i + 1 >= len(argv) or argv[i + 1].startswith('--'):
          raise ConfigError(f'--config needs a file: {USAGE}')
        path = argv[i + 1]
        i += 1
      else:
        path = arg[len('--config='):]
        if not path:
          raise ConfigError(f'--config= needs a file: {USAGE}')
    elif arg.startswith('--' + _PREFIX):
      overrides.append(arg)
      if '=' not in arg:
        if i + 1 >= len(argv) or argv[i + 1].startswith('--config'):
          raise ConfigError(f'override {arg!r} has no value: write {arg}=VALUE or {arg} VALUE')
        overrides.append(argv[i + 1])
        i += 1
    else:
      rest.append(arg)
    i += 1

  if path is None:
    raise ConfigError(f'no config file given (--config PATH is required): {USAGE}')
  config = load_config(path)
  apply_overrides(config, overrides)
  return config, rest
