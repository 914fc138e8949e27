"""config.json <-> the lm_jax config: which family reads a model_type, and the run's config file.

An imported run directory gets `config.py` (a get_config() file holding the
imported config as overrides of base_config()), so that
`lm-jax train|eval --config RUN_DIR/config.py` take the run as it was made.
"""

import json
import logging
import os
import pprint
from typing import Any

import ml_collections

from lm_jax.config.defaults import base_config
from lm_jax.config.loader import dotted_keys
from lm_jax.errors import ConfigError
from lm_jax.models.registry import Family, all_families

CONFIG_JSON = 'config.json'
RUN_CONFIG_FILE = 'config.py'


def read_hf_config(hf_dir: str) -> dict:
  """The model directory's config.json as a dict; ConfigError naming the file otherwise."""
  path = os.path.join(hf_dir, CONFIG_JSON)
  if not os.path.isdir(hf_dir):
    raise ConfigError(f'--from-hf {hf_dir}: not a directory (a Hugging Face model directory '
                      f'holds {CONFIG_JSON} and model.safetensors)')
  if not os.path.isfile(path):
    raise ConfigError(f'{hf_dir}: no {CONFIG_JSON} (a Hugging Face model directory holds '
                      f'{CONFIG_JSON} and model.safetensors)')
  with open(path, encoding='utf-8') as f:
    try:
      return json.load(f)
    except ValueError as e:
      raise ConfigError(f'{path}: not valid JSON: {e}') from e


def family_for(model_type: str | None) -> Family:
  """The family whose HF mapping reads `model_type`; ConfigError listing the supported ones."""
  supported = []
  for family in all_families():
    if family.hf is not None:
      if model_type in family.hf.model_types:
        return family
      supported += family.hf.model_types
  raise ConfigError(f'config.json model_type={model_type!r} is not supported; lm_jax imports '
                    f'{", ".join(map(repr, supported))}')


def _get(config, dotted: str):
  node = config
  for part in dotted.split('.'):
    node = node[part]
  return node


def _set(config, dotted: str, value) -> None:
  *sections, key = dotted.split('.')
  node = config
  for part in sections:
    node = node[part]
  current = node[key]
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  node[key] = value


def apply_keys(keys: dict[str, Any], config: ml_collections.ConfigDict | None,
               source: str) -> ml_collections.ConfigDict:
  """`config` (default: base_config()) with `keys` set: the checkpoint decides them.

  Where `config` explicitly (not its default) said otherwise, a warning lists
  the replaced values (a --config is mostly there for data, training and mesh).
  """
  defaults = base_config()
  config = defaults if config is None else config
  valid = set(dotted_keys(defaults))
  conflicts = []
  for dotted, value in keys.items():
    if dotted not in valid:
      raise ConfigError(f'the Hugging Face mapping sets {dotted}, which is not an lm_jax '
                        'config key')
    current, default = _get(config, dotted), _get(defaults, dotted)
    if current != default and current != value:
      conflicts.append(f'config.{dotted}={current!r}, {source} has {value!r}')
  if conflicts:
    logging.warning('the checkpoint being imported decides these keys; --config\'s values '
                    'are replaced:\n  %s', '\n  '.join(conflicts))
  for dotted, value in keys.items():
    _set(config, dotted, value)
  return config


def overrides_of(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """{dotted key: value} where `config` differs from base_config()."""
  defaults = base_config()
  return {k: _get(config, k) for k in dotted_keys(config)
          if k not in dotted_keys(defaults) or _get(config, k) != _get(defaults, k)}


def write_run_config(config: ml_collections.ConfigDict, run_dir: str, origin: str) -> str:
  """Writes RUN_DIR/config.py: base_config() plus this config's overrides; returns its path."""
  overrides = pprint.pformat(overrides_of(config), indent=1, width=96, sort_dicts=True)
  text = f'''"""lm_jax config of the model imported from {origin} (written by lm-jax convert)."""

from lm_jax.config.defaults import base_config

OVERRIDES = {overrides}


def get_config(arg=None):
  del arg
  config = base_config()
  for dotted, value in OVERRIDES.items():
    *sections, key = dotted.split('.')
    node = config
    for part in sections:
      node = node[part]
    node[key] = value
  return config
'''
  path = os.path.join(run_dir, RUN_CONFIG_FILE)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text)
  return path


def config_from_dict(saved: dict) -> ml_collections.ConfigDict:
  """base_config() with a saved (checkpoint) config's values, keys today's schema lacks skipped."""
  config = base_config()
  for dotted in dotted_keys(config):
    node, found = saved, True
    for part in dotted.split('.'):
      if not isinstance(node, dict) or part not in node:
        found = False
        break
      node = node[part]
    if found:
      _set(config, dotted, tuple(node) if isinstance(node, list) else node)
  return config
