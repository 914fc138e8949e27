"""The rnn family's registry entry (lm_jax/models/registry.py)."""

from lm_jax.errors import refuse_key
from lm_jax.models import transformer_checks
from lm_jax.models.registry import Family
from lm_jax.models.rnn import flops
from lm_jax.models.rnn.config import CELL_GATES, rnn_config_from
from lm_jax.models.rnn.decoding import DECODING
from lm_jax.models.rnn.model import RNNLM

SHARED_KEYS = ('vocab_size', 'vocab_multiple', 'num_layers', 'd_model', 'tie_embeddings',
               'dropout', 'param_dtype', 'dtype', 'init_std')
OWN_DEFAULTS = {
    'cell': 'lstm',       # lstm | gru | rnn (tanh Elman)
    'hidden_size': 0,     # state width of every layer; 0: d_model
}
_RUNTIME_KEYS = ('dropout', 'dtype', 'init_std')


def build(model_cfg, vocab_size: int, mesh_cfg=None):
  """(RNNLM, RNNConfig)."""
  del mesh_cfg
  cfg = rnn_config_from(model_cfg, vocab_size)
  return RNNLM(cfg), cfg


def model_inputs(batch: dict) -> dict:
  """Tokens, and the segment ids of packed documents (the state resets) when present."""
  inputs = {'inputs_BxL': batch['inputs']}
  if 'segment_ids' in batch:
    inputs['segment_ids_BxL'] = batch['segment_ids']
  return inputs


def validate(config, mesh_shape: dict[str, int]) -> None:
  """Cell choice, sizes, and the splits of hidden (tensor), inputs (fsdp) and vocab."""
  m, own = config.model, config.model.rnn
  if own.cell not in CELL_GATES:
    refuse_key('model.rnn.cell', own.cell,
          'not a cell; choose one of ' + ', '.join(map(repr, CELL_GATES)))
  if own.hidden_size < 0:
    refuse_key('model.rnn.hidden_size', own.hidden_size, 'must be >= 0 (0: config.model.d_model)')
  if mesh_shape['sequence'] > 1:
    refuse_key('mesh.sequence', config.mesh.sequence,
          'a recurrence runs through the sequence in order, so its length cannot be split; '
          'use mesh.sequence=1 (data, fsdp and tensor parallelism apply)')
  hidden = own.hidden_size or m.d_model
  tp, fsdp = mesh_shape['tensor'], mesh_shape['fsdp']
  if tp > 1 and hidden % tp:
    refuse_key('model.rnn.hidden_size', own.hidden_size,
          f'the state width {hidden} is not divisible by config.mesh.tensor={tp}: tensor '
          'parallelism splits it over the tensor devices; use a multiple of '
          f'{tp} (or a smaller mesh.tensor)')
  if fsdp > 1 and hidden % fsdp:
    refuse_key('model.rnn.hidden_size', own.hidden_size,
          f'the state width {hidden} is not divisible by config.mesh.fsdp={fsdp}: fsdp '
          'shards the input dimension of the recurrent kernels; use a multiple of '
          f'{fsdp}')
  transformer_checks.check_vocab_split(m, tp)
  transformer_checks.check_fsdp_split(m, fsdp)


FAMILY = Family(
    name='rnn',
    description='recurrent LM: vanilla RNN, LSTM or GRU layers (config.model.rnn.cell)',
    shared_keys=SHARED_KEYS,
    own_defaults=OWN_DEFAULTS,
    validate=validate,
    build=build,
    model_inputs=model_inputs,
    tasks=('lm',),
    flops_per_token=flops.flops_per_token,
    num_params=flops.num_params,
    shape_keys=tuple(f'model.{k}' for k in SHARED_KEYS if k not in _RUNTIME_KEYS)
    + tuple(f'model.rnn.{k}' for k in OWN_DEFAULTS),
    decoding=DECODING,
)
