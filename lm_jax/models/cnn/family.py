"""The cnn family's registry entry (lm_jax/models/registry.py)."""

from lm_jax.errors import refuse_key
from lm_jax.models import transformer_checks
from lm_jax.models.cnn import flops
from lm_jax.models.cnn.config import cnn_config_from
from lm_jax.models.cnn.decoding import DECODING
from lm_jax.models.cnn.model import GatedCNN
from lm_jax.models.registry import Family

SHARED_KEYS = ('vocab_size', 'vocab_multiple', 'num_layers', 'd_model', 'norm', 'norm_eps',
               'use_bias', 'tie_embeddings', 'dropout', 'param_dtype', 'dtype', 'init_std')
OWN_DEFAULTS = {
    'kernel_size': 4,     # taps of each causal convolution
    'channels': 0,        # GLU width of a block; 0: d_model (no 1x1 projection back)
    'pre_norm': True,     # norm (config.model.norm) before each convolution and the head
}
_RUNTIME_KEYS = ('dropout', 'dtype', 'init_std', 'norm_eps')


def build(model_cfg, vocab_size: int, mesh_cfg=None):
  """(GatedCNN, CNNConfig)."""
  del mesh_cfg
  cfg = cnn_config_from(model_cfg, vocab_size)
  return GatedCNN(cfg), cfg


def model_inputs(batch: dict) -> dict:
  """Tokens, and the segment ids of packed documents (taps stop at their start) when present."""
  inputs = {'inputs_BxL': batch['inputs']}
  if 'segment_ids' in batch:
    inputs['segment_ids_BxL'] = batch['segment_ids']
  return inputs


def validate(config, mesh_shape: dict[str, int]) -> None:
  """Kernel and channel sizes, and the splits of channels (tensor), d_model (fsdp), vocab."""
  m, own = config.model, config.model.cnn
  if own.kernel_size < 1:
    refuse_key('model.cnn.kernel_size', own.kernel_size, 'must be a positive int (taps per convolution)')
  if own.channels < 0:
    refuse_key('model.cnn.channels', own.channels, 'must be >= 0 (0: config.model.d_model)')
  if mesh_shape['sequence'] > 1:
    refuse_key('mesh.sequence', config.mesh.sequence,
          'the cnn family does not split the sequence (its convolutions would need halo '
          'exchanges it does not implement); use mesh.sequence=1')
  tp = mesh_shape['tensor']
  channels = own.channels or m.d_model
  if tp > 1 and channels % tp:
    refuse_key('model.cnn.channels', own.channels,
          f'the GLU width {channels} is not divisible by config.mesh.tensor={tp}: tensor '
          f'parallelism splits it over the tensor devices; use a multiple of {tp}')
  transformer_checks.check_vocab_split(m, tp)
  transformer_checks.check_fsdp_split(m, mesh_shape['fsdp'])


FAMILY = Family(
    name='cnn',
    description='gated convolutional LM (Dauphin et al. 2017): causal convolutions with GLU',
    shared_keys=SHARED_KEYS,
    own_defaults=OWN_DEFAULTS,
    validate=validate,
    build=build,
    model_inputs=model_inputs,
    tasks=('lm',),
    flops_per_token=flops.flops_per_token,
    num_params=flops.num_params,
    shape_keys=tuple(f'model.{k}' for k in SHARED_KEYS if k not in _RUNTIME_KEYS)
    + tuple(f'model.cnn.{k}' for k in OWN_DEFAULTS),
    decoding=DECODING,
)
