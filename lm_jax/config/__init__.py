"""Configuration: the base schema, config files, command-line overrides, validation."""

from lm_jax.config.defaults import base_config
from lm_jax.config.loader import (ConfigError, apply_overrides, exit_on_config_error,
                                  load_config, parse_cli_config)
from lm_jax.config.validate import resolve_mesh_shape, validate

__all__ = ['ConfigError', 'apply_overrides', 'base_config', 'exit_on_config_error',
           'load_config', 'parse_cli_config', 'resolve_mesh_shape', 'validate']
