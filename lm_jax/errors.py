"""The user-error type, shared by every layer (the CLI prints it, no traceback)."""


class ConfigError(Exception):
  """A mistake in a config file, an override or a config value (a user error)."""
