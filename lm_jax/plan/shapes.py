"""The facts about a config's model that the planner needs, computed without data.

The vocabulary comes from model.vocab_size, a --vocab-size flag, or the
tokenizer kind (byte: 256, bpe: data.bpe_vocab_size; char needs one of the
first two). Parameter shapes and their logical axis names come from the model
itself (`jax.eval_shape` of its init: nothing is allocated), so the
per-device parameter count under any mesh follows the same rule tables that
training uses.
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lm_jax.errors import ConfigError
from lm_jax.models.decoder import flops
from lm_jax.models import build_model
from lm_jax.models.config import TransformerConfig

TOKENIZER_VOCAB_SIZE = {'byte': 256}
DTYPE_BYTES = {'float32': 4, 'bfloat16': 2}


@dataclasses.dataclass(frozen=True)
class ParamLeaf:
  """One parameter array: shape, logical axis names, bytes per element."""
  shape: tuple[int, ...]
  axes: tuple[str | None, ...]
  dtype_bytes: int

  @property
  def per_layer(self) -> bool:
    """A stacked weight of the scanned layers (a 'layers' axis)."""
    return 'layers' in self.axes


@dataclasses.dataclass(frozen=True)
class ModelFacts:
  """Model config, parameter leaves and the batch geometry of one config."""
  cfg: TransformerConfig
  leaves: tuple[ParamLeaf, ...]
  seq_len: int
  global_batch: int
  param_bytes: int      # bytes per parameter element (model.param_dtype)
  compute_bytes: int    # bytes per activation element (model.dtype)

  @property
  def num_params(self) -> int:
    return flops.num_params(self.cfg)['total']

  @property
  def pipelined(self) -> bool:
    """Whether the model splits its layers over the `stage` mesh axis."""
    return any('stage' in leaf.axes for leaf in self.leaves)


def vocab_size_of(config: ml_collections.ConfigDict, override: int = 0) -> int:
  """The real vocabulary size, without building a tokenizer."""
  if override:
    return override
  if config.model.vocab_size:
    return config.model.vocab_size
  if config.data.tokenizer == 'bpe':
    return config.data.bpe_vocab_size
  if config.data.tokenizer in TOKENIZER_VOCAB_SIZE:
    return TOKENIZER_VOCAB_SIZE[config.data.tokenizer]
  raise ConfigError(
      f'config.data.tokenizer={config.data.tokenizer!r}: its vocabulary depends on the '
      'corpus; give it with --vocab-size N (or --config.model.vocab_size=N)')


def model_facts(config: ml_collections.ConfigDict, vocab_size: int,
                stage: int = 1) -> ModelFacts:
  """ModelFacts of `config` on `stage` pipeline stages, its layers built scanned
  (the layout the planner assumes)."""
  model_cfg = config.model.copy_and_resolve_references()
  model_cfg.scan_layers = True
  mesh_cfg = config.mesh.copy_and_resolve_references()
  mesh_cfg.stage, mesh_cfg.pipeline_microbatches = stage, 1
  model, cfg = build_model(model_cfg, vocab_size, mesh_cfg)
  boxed = jax.eval_shape(model.init, jax.ShapeDtypeStruct((2,), jnp.uint32),
                         jax.ShapeDtypeStruct((1, 8), jnp.int32))
  specs = jax.tree.leaves(nn.get_partition_spec(boxed),
                          is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
  arrays = jax.tree.leaves(nn.meta.unbox(boxed))
  leaves = tuple(ParamLeaf(tuple(a.shape), tuple(spec), jnp.dtype(a.dtype).itemsize)
                 for a, spec in zip(arrays, specs))
  return ModelFacts(cfg=dataclasses.replace(cfg, scan_layers=config.model.scan_layers),
                    leaves=leaves, seq_len=config.data.seq_len,
                    global_batch=config.train.global_batch_size,
                    param_bytes=DTYPE_BYTES[config.model.param_dtype],
                    compute_bytes=DTYPE_BYTES[config.model.dtype])


def shard_count(axis_name, rules: dict, mesh_shape: dict[str, int]) -> int:
  """How many pieces the rules cut a dim with logical name `axis_name` into."""
  mesh_axes = rules.get(axis_name)
  if mesh_axes is None:
    return 1
  if isinstance(mesh_axes, str):
    mesh_axes = (mesh_axes,)
  return math.prod(mesh_shape.get(a, 1) for a in mesh_axes)


def local_elements(leaf: ParamLeaf, rules: dict, mesh_shape: dict[str, int]) -> int:
  """Elements of `leaf` on one device (XLA pads an uneven last shard: ceil)."""
  return math.prod(-(-size // shard_count(name, rules, mesh_shape))
                   for size, name in zip(leaf.shape, leaf.axes))


def local_param_elements(facts: ModelFacts, rules: dict, mesh_shape: dict[str, int],
                         *, per_layer: bool | None = None) -> int:
  """Parameter elements per device (only layer / only non-layer leaves if per_layer is set)."""
  return sum(local_elements(leaf, rules, mesh_shape) for leaf in facts.leaves
             if per_layer is None or leaf.per_layer == per_layer)
