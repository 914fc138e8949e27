"""The model families: one `Family` entry each, the only place a family is chosen by name.

A family declares everything the rest of lm_jax asks of it: the config keys it
reads and their checks, how its module is built, which batch keys become model
inputs, the tasks (batch makers) it trains on, FLOPs per token and parameter
count, the config keys that shape its parameters (a checkpoint is unreadable
when they change), whether the planner models it, and its Hugging Face mapping.
Validation, the builder, the loop, the planner, the benchmark and
`check_resumable` ask the entry; none of them compares family names.
"""

import dataclasses
from typing import Any, Callable

import ml_collections

from lm_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Family:
  """What a model family provides (see the module doc)."""
  name: str
  description: str
  # Keys of config.model (outside its own subsection) the family reads; a
  # key it does not read must stay at its default.
  shared_keys: tuple[str, ...]
  # config.model.<name> subsection: key -> default ({}: none).
  own_defaults: dict[str, Any]
  # validate(config, mesh_shape) -> None; raises ConfigError naming the key.
  validate: Callable[[ml_collections.ConfigDict, dict[str, int]], None]
  # build(config, vocab_size) -> (linen module, resolved model dataclass).
  build: Callable[[ml_collections.ConfigDict, int], tuple[Any, Any]]
  # model_inputs(batch) -> keyword arguments of the module's __call__.
  model_inputs: Callable[[dict], dict]
  # Task names (lm_jax/data/tasks) this family trains on; the first is the default.
  tasks: tuple[str, ...]
  # flops_per_token(model_cfg, seq_len) -> {'forward': ..., 'train': ..., ...}.
  flops_per_token: Callable[[Any, int], dict[str, float]]
  # num_params(model_cfg) -> {'total', 'embedding', 'non_embedding'}.
  num_params: Callable[[Any], dict[str, int]]
  # Dotted config keys whose change changes the parameter tree or shapes.
  shape_keys: tuple[str, ...]
  # outputs(module output) -> {'logits': [B, L, V], ...}.
  outputs: Callable[[Any], dict] = None  # None: the module returns the logits
  planner: bool = False   # lm-jax plan models its memory and step time
  pipeline: bool = False  # mesh.stage > 1 splits its layers into stages
  hf: Any = None          # lm_jax.models.hf_mapping.HFMapping, or None (no HF interop)
  decoding: Any = None    # lm_jax.models.decoding.Decoding, or None (cannot generate)


def _families() -> dict[str, Family]:
  from lm_jax.models.decoder.family import FAMILY as decoder  # pylint: disable=g-import-not-at-top
  from lm_jax.models.encoder.family import FAMILY as encoder  # pylint: disable=g-import-not-at-top
  from lm_jax.models.encdec.family import FAMILY as encdec  # pylint: disable=g-import-not-at-top
  from lm_jax.models.rnn.family import FAMILY as rnn  # pylint: disable=g-import-not-at-top
  from lm_jax.models.cnn.family import FAMILY as cnn  # pylint: disable=g-import-not-at-top
  return {f.name: f for f in (decoder, encoder, encdec, rnn, cnn)}


FAMILY_NAMES = ('decoder', 'encoder', 'encdec', 'rnn', 'cnn')


def get_family(name: str) -> Family:
  """The registry entry of `name`; ConfigError listing the families otherwise."""
  families = _families()
  if name not in families:
    raise ConfigError(f'config.model.family={name!r} is not a model family; '
                      f'choose one of {", ".join(map(repr, families))}')
  return families[name]


def all_families() -> tuple[Family, ...]:
  """Every registered family, in registration order."""
  return tuple(_families().values())


@dataclasses.dataclass(frozen=True)
class ModelFns:
  """A family's module as batch -> outputs functions: what the state and steps call."""
  init: Callable[..., Any]   # init(rng, batch) -> variables
  apply: Callable[..., dict]  # apply(variables, batch, deterministic=True, rngs=None) -> outputs


def model_fns(family: Family, module) -> ModelFns:
  """init/apply of `module` taking whole batches (the family picks the model inputs)."""
  outputs = family.outputs or (lambda logits: {'logits': logits})

  def init(rng, batch):
    return module.init(rng, **family.model_inputs(batch))

  def apply(variables, batch, deterministic: bool = True, rngs=None, **kwargs):
    raw = module.apply(variables, **family.model_inputs(batch), deterministic=deterministic,
                       rngs=rngs, **kwargs)
    return outputs(raw)

  return ModelFns(init=init, apply=apply)
