"""A trained run, loaded for generation: its saved config, tokenizer, model and params."""

import dataclasses
import functools
import os
from typing import Any

import jax
import ml_collections

from lm_jax.build import Built, build, task_of
from lm_jax.config.defaults import base_config
from lm_jax.config.loader import apply_overrides
from lm_jax.data import special_tokens
from lm_jax.data.tokenizers import Tokenizer, load_tokenizer
from lm_jax.errors import ConfigError
from lm_jax.generate.sampling import SampleConfig

# One device: generation of a handful of prompts needs no mesh.
_SINGLE_DEVICE_MESH = {'data': 1, 'stage': 1, 'fsdp': 1, 'sequence': 1, 'tensor': 1}


@dataclasses.dataclass
class LoadedRun:
  """What generation and the harness need of a run directory."""
  config: ml_collections.ConfigDict
  built: Built
  tokenizer: Tokenizer
  params: Any
  step: int

  @property
  def decoding(self):
    decoding = self.built.family.decoding
    if decoding is None:
      from lm_jax.models.registry import all_families  # pylint: disable=g-import-not-at-top
      able = ', '.join(repr(f.name) for f in all_families() if f.decoding is not None)
      raise ConfigError(f'config.model.family={self.built.family.name!r} cannot generate '
                        f'(its registry entry has no decoding); runs of the families {able} '
                        'can')
    return decoding

  @functools.cached_property
  def special_ids(self) -> dict[str, int]:
    """{role: id} of the special tokens of the run's task (lm_jax/data/special_tokens.py)."""
    return special_tokens.special_ids(self.tokenizer,
                                      task_of(self.config).special_tokens(self.config.data))

  @property
  def stop_tokens(self) -> tuple[int, ...]:
    """The run's <eos> where its task has one (T5 targets, eos-separated documents): the
    end of a generated text."""
    return (self.special_ids['eos'],) if 'eos' in self.special_ids else ()

  @functools.cached_property
  def _spelled(self) -> dict[int, str]:
    # Every role's appended id, then the task's own (where two roles share an id, it names it).
    spelled = {}
    for ids in (special_tokens.special_ids(self.tokenizer, special_tokens.ROLES),
                self.special_ids):
      spelled.update({i: special_tokens.SPELLING[role] for role, i in ids.items()})
    return spelled

  def decode(self, ids) -> str:
    """The text of `ids`: text ids through the tokenizer, the ids past its vocabulary as
    their role's spelling (`<extra_id_0>`, `<eos>`), or `<id N>`."""
    pieces, text_ids = [], []
    for i in map(int, ids):
      if i < self.tokenizer.vocab_size:
        text_ids.append(i)
        continue
      if text_ids:
        pieces.append(self.tokenizer.decode(text_ids))
        text_ids = []
      pieces.append(self._spelled.get(i, f'<id {i}>'))
    if text_ids or not pieces:
      pieces.append(self.tokenizer.decode(text_ids))
    return ''.join(pieces)


def config_from_saved(saved: dict) -> ml_collections.ConfigDict:
  """The base config with the saved values of the keys it knows (older runs lack new sections)."""
  config = base_config()

  def merge(node: ml_collections.ConfigDict, values: dict):
    for key, value in values.items():
      if key not in node:
        continue
      if isinstance(node[key], ml_collections.ConfigDict):
        if isinstance(value, dict):
          merge(node[key], value)
      else:
        node[key] = tuple(value) if isinstance(node[key], tuple) else value

  merge(config, saved)
  return config


def sample_config(config: ml_collections.ConfigDict) -> SampleConfig:
  """config.sample's sampler settings (checked: ConfigError names the key)."""
  s = config.sample
  if s.max_new_tokens < 1:
    raise ConfigError(f'config.sample.max_new_tokens={s.max_new_tokens}: must be >= 1')
  return SampleConfig(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p,
                      repetition_penalty=s.repetition_penalty)


def load_run(run_dir: str, step: int | None = None, overrides=()) -> LoadedRun:
  """Restores <run_dir>'s checkpoint `step` (default: the latest) on one device.

  `overrides`: --config.* flags on top of the saved config (e.g. config.sample.*).
  """
  from lm_jax.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(os.path.join(run_dir, 'checkpoints')):
    raise ConfigError(f'--run {run_dir}: no checkpoints directory; give the '
                      'config.logging.run_dir of a trained run')
  ckpt_cfg = ml_collections.ConfigDict({'keep': 1000, 'async_save': False})
  ckpt = Checkpointer(run_dir, ckpt_cfg)
  steps = ckpt.all_steps()
  if not steps or (step is not None and step not in steps):
    raise ConfigError(f'--step {step}: no such checkpoint in {ckpt.directory}; saved steps: '
                      f'{steps}' if step is not None else f'no checkpoint in {ckpt.directory}')
  step = ckpt.latest_step() if step is None else step
  config = config_from_saved(ckpt.saved_config(step))
  if config.mesh.stage > 1:
    raise ConfigError(f'{run_dir} was trained pipelined (config.mesh.stage='
                      f'{config.mesh.stage}): generating from [stage, layers/stage] params '
                      'is not supported')
  config.mesh.update(_SINGLE_DEVICE_MESH)
  config.train.microbatches = 1
  config.logging.run_dir = run_dir
  apply_overrides(config, overrides)
  tokenizer = load_tokenizer(os.path.join(run_dir, 'tokenizer'))
  roles = task_of(config).special_tokens(config.data)
  built = build(config, special_tokens.model_vocab_size(tokenizer, roles),
                devices=jax.devices()[:1])
  if built.family.decoding is not None:
    built.model_cfg = built.family.decoding.for_tokenizer(
        built.model_cfg, special_tokens.special_ids(tokenizer, roles))
  state = ckpt.restore(built.abstract_state(), None, step=step)
  ckpt.close()
  return LoadedRun(config=config, built=built, tokenizer=tokenizer, params=state.params,
                   step=step)
