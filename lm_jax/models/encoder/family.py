"""The encoder (BERT) family's registry entry (lm_jax/models/registry.py)."""

from lm_jax.errors import ConfigError
from lm_jax.models import transformer_checks
from lm_jax.models.encoder import flops
from lm_jax.models.encoder.config import NORM_POSITIONS, encoder_config_from
from lm_jax.models.encoder.hf import HF_MAPPING
from lm_jax.models.encoder.model import Encoder
from lm_jax.models.registry import Family

SHARED_KEYS = (
    'vocab_size', 'vocab_multiple', 'num_layers', 'd_model', 'num_heads', 'head_dim',
    'mlp_dim', 'max_len', 'norm_eps', 'use_bias', 'dropout', 'param_dtype', 'dtype',
    'attention', 'scan_layers', 'remat', 'init_std')
OWN_DEFAULTS = {
    'norm_position': 'post',  # post (BERT: x = LN(x + f(x))) | pre (x + f(LN(x)), final LN)
    'type_vocab_size': 2,     # token types: segment A = 0, B = 1
    'nsp_head': False,        # pooler + next-sentence classifier (needed by data.nsp=True)
}
# These change how the model runs, not its parameters.
_RUNTIME_KEYS = ('dropout', 'attention', 'remat', 'dtype')
# Batch key -> keyword of Encoder.__call__ (the ones a batch may lack are optional).
_INPUTS = (('inputs', 'inputs_BxL'), ('token_types', 'token_types_BxL'),
           ('positions', 'positions_BxL'), ('segment_ids', 'segment_ids_BxL'),
           ('padding_mask', 'padding_mask_BxL'))


def build(model_cfg, vocab_size: int, mesh_cfg=None):
  """(Encoder, EncoderConfig)."""
  cfg = encoder_config_from(model_cfg, vocab_size, mesh_cfg)
  return Encoder(cfg), cfg


def model_inputs(batch: dict) -> dict:
  """Tokens, and whichever of token types, positions, packed segment ids and padding it has."""
  return {arg: batch[key] for key, arg in _INPUTS if key in batch}


def validate(config, mesh_shape: dict[str, int]) -> None:
  """Transformer checks (heads, length, tensor / fsdp splits) and the encoder's own keys."""
  transformer_checks.check_transformer(config, mesh_shape)
  own = config.model.encoder
  if own.norm_position not in NORM_POSITIONS:
    raise ConfigError(f'config.model.encoder.norm_position={own.norm_position!r}: not a valid '
                      f'choice; choose one of {", ".join(map(repr, NORM_POSITIONS))}')
  if own.type_vocab_size < 1:
    raise ConfigError(f'config.model.encoder.type_vocab_size={own.type_vocab_size!r}: must be '
                      'a positive int (token types: segment A = 0, B = 1)')
  if config.data.nsp and not own.nsp_head:
    raise ConfigError('config.data.nsp=True: next-sentence prediction needs the model\'s NSP '
                      'head; set config.model.encoder.nsp_head=True (or data.nsp=False)')
  if config.data.nsp and config.objective.name != 'mlm':
    raise ConfigError(f'config.objective.name={config.objective.name!r}: with config.data.nsp=True '
                      "only the 'mlm' objective trains the next-sentence head; use "
                      "config.objective.name='mlm' (or data.nsp=False)")
  shortest = 5 if config.data.nsp else 3
  if config.data.seq_len < shortest:
    raise ConfigError(f'config.data.seq_len={config.data.seq_len!r}: an mlm row is [CLS] A [SEP]'
                      f'{" B [SEP]" if config.data.nsp else ""}, so it needs at least '
                      f'{shortest} tokens')
  if config.data.nsp and own.type_vocab_size < 2:
    raise ConfigError(f'config.model.encoder.type_vocab_size={own.type_vocab_size!r}: '
                      'config.data.nsp=True gives sentence B token type 1, so it must be >= 2')


def outputs(raw: dict) -> dict:
  """The module already returns {'logits': MLM logits[, 'nsp_logits']}."""
  return dict(raw)


FAMILY = Family(
    name='encoder',
    description='encoder-only Transformer (BERT): bidirectional, MLM (+ NSP) pre-training',
    shared_keys=SHARED_KEYS,
    own_defaults=OWN_DEFAULTS,
    validate=validate,
    build=build,
    model_inputs=model_inputs,
    tasks=('mlm',),
    flops_per_token=flops.flops_per_token,
    num_params=flops.num_params,
    shape_keys=tuple(f'model.{k}' for k in SHARED_KEYS if k not in _RUNTIME_KEYS)
    + tuple(f'model.encoder.{k}' for k in OWN_DEFAULTS),
    outputs=outputs,
    hf=HF_MAPPING,
)
