"""The user-error type, shared by every layer (the CLI prints it, no traceback)."""

import os
import traceback


class ConfigError(Exception):
  """A mistake in a config file, an override or a config value (a user error)."""


def refuse_key(key: str, value, why: str):
  """Raises the ConfigError 'config.<key>=<value>: <why>' (why says what would be valid)."""
  raise ConfigError(f'config.{key}={value!r}: {why}')


def user_code_error(what: str, path: str, error: Exception) -> ConfigError:
  """The ConfigError for `error`, raised while running the user's file `path` (a config or
  sweep file): the line of that file it came through and what it was."""
  if isinstance(error, ConfigError):  # already says what is wrong
    return error
  target = os.path.abspath(path)
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if os.path.abspath(frame.filename) == target]
  where = f', line {lines[-1]}' if lines else ''
  return ConfigError(f'{what} {path!r}{where}: {type(error).__name__}: {error}')
