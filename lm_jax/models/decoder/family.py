"""The decoder family's registry entry (lm_jax/models/registry.py)."""

from lm_jax.errors import ConfigError
from lm_jax.models import transformer_checks
from lm_jax.models.config import transformer_config_from
from lm_jax.models.decoder import flops
from lm_jax.models.decoder.decoding import DECODING
from lm_jax.models.decoder.hf import MAPPING as HF_MAPPING
from lm_jax.models.decoder.model import Decoder
from lm_jax.models.registry import Family

SHARED_KEYS = (
    'vocab_size', 'vocab_multiple', 'num_layers', 'd_model', 'num_heads', 'num_kv_heads',
    'head_dim', 'mlp_dim', 'max_len', 'position', 'rope_theta', 'norm', 'norm_eps', 'mlp',
    'use_bias', 'tie_embeddings', 'dropout', 'param_dtype', 'dtype', 'attention',
    'scan_layers', 'remat', 'init_std')
# These change how the model runs, not its parameters.
_RUNTIME_KEYS = ('dropout', 'attention', 'remat', 'dtype')


def build(model_cfg, vocab_size: int, mesh_cfg=None):
  """(Decoder, TransformerConfig), pipelined over mesh_cfg.stage stages when > 1."""
  cfg = transformer_config_from(model_cfg, vocab_size, mesh_cfg)
  return Decoder(cfg), cfg


def model_inputs(batch: dict) -> dict:
  """Tokens, and the positions / segment ids of packed documents when the batch has them."""
  inputs = {'inputs_BxL': batch['inputs']}
  for key, arg in (('positions', 'positions_BxL'), ('segment_ids', 'segment_ids_BxL')):
    if key in batch:
      inputs[arg] = batch[key]
  return inputs


def validate(config, mesh_shape: dict[str, int]) -> None:
  """Transformer checks, plus the pipeline's: stages hold whole layers."""
  transformer_checks.check_transformer(config, mesh_shape)
  _check_pipeline(config, mesh_shape)


def _check_pipeline(config, shape: dict[str, int]) -> None:
  """Stages hold whole layers; each pipeline microbatch splits over data*fsdp."""
  stages, pm = shape['stage'], config.mesh.pipeline_microbatches
  if stages == 1:
    return
  t = config.train
  micro, batch_parallel = t.global_batch_size // t.microbatches, shape['data'] * shape['fsdp']
  if config.mesh.stage == -1:
    raise ConfigError('config.mesh.stage=-1: the pipeline stage count shapes the params '
                      '([stage, layers/stage, ...]), so give it explicitly; let another '
                      'axis be -1')
  layers = config.model.num_layers
  if layers % stages:
    raise ConfigError(
        f'config.model.num_layers={layers!r}: not divisible by config.mesh.stage={stages}: '
        f'each pipeline stage holds num_layers / stage whole layers; use a multiple of '
        f'{stages} layers')
  if micro % pm or (micro // pm) % batch_parallel:
    raise ConfigError(
        f'config.mesh.pipeline_microbatches={pm!r}: each gradient-accumulation microbatch of '
        f'{micro} sequences (global_batch_size / train.microbatches) is split into {pm} '
        f'pipeline microbatches, each of which must split evenly over data*fsdp = '
        f'{batch_parallel}; use a pipeline_microbatches dividing {micro} with {micro} / '
        f'pipeline_microbatches a multiple of {batch_parallel}')


FAMILY = Family(
    name='decoder',
    description='decoder-only Transformer LM (GPT-2 / Llama styles), causal',
    shared_keys=SHARED_KEYS,
    own_defaults={},
    validate=validate,
    build=build,
    model_inputs=model_inputs,
    tasks=('lm',),
    flops_per_token=flops.flops_per_token,
    num_params=flops.num_params,
    shape_keys=tuple(f'model.{k}' for k in SHARED_KEYS if k not in _RUNTIME_KEYS)
    + ('mesh.stage',),
    planner=True,
    pipeline=True,
    hf=HF_MAPPING,
    decoding=DECODING,
)
