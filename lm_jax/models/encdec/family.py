"""The encdec (T5) family's registry entry (lm_jax/models/registry.py)."""

from lm_jax.errors import refuse_key
from lm_jax.models import transformer_checks
from lm_jax.models.encdec import flops
from lm_jax.models.encdec.config import FEED_FORWARDS, encdec_config_from
from lm_jax.models.encdec.decoding import DECODING
from lm_jax.models.encdec.hf import MAPPING
from lm_jax.models.encdec.model import EncoderDecoder
from lm_jax.models.registry import Family

SHARED_KEYS = (
    'vocab_size', 'vocab_multiple', 'num_layers', 'd_model', 'num_heads', 'head_dim',
    'mlp_dim', 'max_len', 'norm_eps', 'tie_embeddings', 'dropout', 'param_dtype', 'dtype',
    'attention', 'scan_layers', 'remat', 'init_std')
OWN_DEFAULTS = {
    'num_decoder_layers': 0,                 # 0: = model.num_layers (the encoder's)
    'relative_attention_num_buckets': 32,
    'relative_attention_max_distance': 128,
    'feed_forward': 'relu',                  # relu (T5 v1.0) | gated-gelu (T5.1.1)
}
# These change how the model runs, not its parameters.
_RUNTIME_KEYS = ('dropout', 'attention', 'remat', 'dtype')


def build(model_cfg, vocab_size: int, mesh_cfg=None):
  """(EncoderDecoder, EncDecConfig)."""
  del mesh_cfg  # no pipeline stages
  cfg = encdec_config_from(model_cfg, vocab_size)
  return EncoderDecoder(cfg), cfg


def model_inputs(batch: dict) -> dict:
  """Encoder tokens and their validity (padding), decoder tokens (targets shifted right)."""
  return {'encoder_inputs_BxS': batch['encoder_inputs'],
          'decoder_inputs_BxT': batch['decoder_inputs'],
          'encoder_valid_BxS': batch['encoder_valid']}


def validate(config, mesh_shape: dict[str, int]) -> None:
  """Transformer checks (heads, length, tensor/fsdp splits) and T5's own keys."""
  transformer_checks.check_transformer(config, mesh_shape)
  own = config.model.encdec
  if own.feed_forward not in FEED_FORWARDS:
    refuse_key('model.encdec.feed_forward', own.feed_forward,
          'not a valid choice; choose one of ' + ', '.join(map(repr, FEED_FORWARDS)))
  if own.num_decoder_layers < 0:
    refuse_key('model.encdec.num_decoder_layers', own.num_decoder_layers,
          'must be >= 0 (0 means "as many as config.model.num_layers")')
  buckets = own.relative_attention_num_buckets
  if buckets < 4 or buckets % 2:
    refuse_key('model.encdec.relative_attention_num_buckets', buckets,
          'must be an even int >= 4: the encoder splits the buckets in halves (keys before '
          'and after the query), each half exact for the first quarter of them')
  if own.relative_attention_max_distance <= buckets // 2:
    refuse_key('model.encdec.relative_attention_max_distance', own.relative_attention_max_distance,
          f'must exceed relative_attention_num_buckets // 2 = {buckets // 2}, the last '
          'exactly bucketed distance; the log-spaced buckets run from there to it')
  if mesh_shape['sequence'] > 1:
    refuse_key('mesh.sequence', config.mesh.sequence,
          "the encdec family does not split its encoder and decoder lengths; use "
          'mesh.sequence=1 (data, fsdp and tensor parallelism apply)')


def flops_per_token(model_cfg, seq_len: int) -> dict[str, float]:
  """Per encoder token, decoder as long as the encoder (see flops.py)."""
  return flops.flops_per_token(model_cfg, seq_len)


FAMILY = Family(
    name='encdec',
    description='encoder-decoder Transformer (T5 v1.0 / v1.1), relative position bias',
    shared_keys=SHARED_KEYS,
    own_defaults=OWN_DEFAULTS,
    validate=validate,
    build=build,
    model_inputs=model_inputs,
    tasks=('span_corruption', 'seq2seq'),
    flops_per_token=flops_per_token,
    num_params=flops.num_params,
    shape_keys=tuple(f'model.{k}' for k in SHARED_KEYS if k not in _RUNTIME_KEYS)
    + tuple(f'model.encdec.{k}' for k in OWN_DEFAULTS),
    planner=False,
    hf=MAPPING,
    decoding=DECODING,
)
