"""Hugging Face T5 (`T5ForConditionalGeneration`, model_type 't5') <-> the encdec family.

T5 v1.0 (ReLU, tied embeddings, decoder output scaled by d_model**-0.5) and
T5.1.1 (gated-GELU, separate `lm_head`, no scaling). transformers 5 always
ties `lm_head` to `shared` and reads `tie_word_embeddings: false` as "do not
scale"; a checkpoint that has its own `lm_head.weight` still loads untied.
So an untied lm_jax model is exported with its own `lm_head.weight`, and a
checkpoint without one gives the untied head a copy of `shared`.

Each tensor's correspondence is one row of `_layout`: HF's Linear weights are
[out, in]; lm_jax's kernels are [in, out], attention's split into heads.
"""

from typing import Iterator

import numpy as np

from lm_jax.errors import ConfigError
from lm_jax.models.encdec.config import FEED_FORWARDS
from lm_jax.models.hf_mapping import HFMapping

_ATTENTION = (('query', 'q', 'in'), ('key', 'k', 'in'), ('value', 'v', 'in'),
              ('out', 'o', 'out'))


def _mlp_rows(path, hf, cfg):
  ins = ('wi_0', 'wi_1') if cfg.feed_forward == 'gated-gelu' else ('wi',)
  for name in ins + ('wo',):
    yield path + (name, 'kernel'), f'{hf}.DenseReluDense.{name}.weight', 'linear'


def _layer_rows(stack: str, i: int, cfg):
  """(param path inside the block, HF tensor name, kind) of layer i of `stack`."""
  layer = f'{stack}.block.{i}.layer'
  parts = [('attn', 'attn_norm', f'{layer}.0', 'SelfAttention')]
  if stack == 'decoder':
    parts.append(('cross_attn', 'cross_norm', f'{layer}.1', 'EncDecAttention'))
  for attn, norm, hf, hf_attn in parts:
    yield (norm, 'RMSNorm_0', 'scale'), f'{hf}.layer_norm.weight', 'copy'
    for ours, theirs, kind in _ATTENTION:
      yield (attn, ours, 'kernel'), f'{hf}.{hf_attn}.{theirs}.weight', kind
  hf = f'{layer}.{len(parts)}'
  yield ('mlp_norm', 'RMSNorm_0', 'scale'), f'{hf}.layer_norm.weight', 'copy'
  yield from _mlp_rows(('mlp',), hf, cfg)


def _stacks(cfg):
  return (('encoder', cfg.num_layers), ('decoder', cfg.num_decoder_layers))


def _layout(cfg):
  """(lm_jax param path, HF tensor name, kind) of every tensor outside the blocks."""
  yield ('embed', 'embedding'), 'shared.weight', 'vocab_rows'
  for stack, _ in _stacks(cfg):
    yield ((stack, 'relative_bias', 'embedding'),
           f'{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'copy')
    yield (stack, 'final_norm', 'RMSNorm_0', 'scale'), f'{stack}.final_layer_norm.weight', 'copy'
  if not cfg.tie_embeddings:
    yield ('lm_head', 'kernel'), 'lm_head.weight', 'vocab_cols'


def _per_layer(cfg):
  """(stack, [layer i's rows for each i]) of both stacks: _layer_rows listed."""
  for stack, num_layers in _stacks(cfg):
    yield stack, [list(_layer_rows(stack, i, cfg)) for i in range(num_layers)]


def _pad_rows(x_VxD, rows: int):
  return np.concatenate([x_VxD, np.zeros((rows - len(x_VxD),) + x_VxD.shape[1:], x_VxD.dtype)])


def _to_lm_jax(x, kind: str, cfg):
  N, H, D = cfg.num_heads, cfg.head_dim, cfg.d_model
  if kind == 'in':    # [N*H, D] -> [D, N, H]
    return x.T.reshape(D, N, H)
  if kind == 'out':   # [D, N*H] -> [N, H, D]
    return x.T.reshape(N, H, D)
  if kind == 'linear':
    return x.T
  if kind == 'vocab_rows':
    return _pad_rows(x, cfg.padded_vocab_size)
  if kind == 'vocab_cols':  # lm_head [V, D] -> kernel [D, V padded]
    return _pad_rows(x, cfg.padded_vocab_size).T
  return x


def _to_hf(x, kind: str, cfg):
  N, H, D = cfg.num_heads, cfg.head_dim, cfg.d_model
  if kind == 'in':
    return x.reshape(D, N * H).T
  if kind == 'out':
    return x.reshape(N * H, D).T
  if kind == 'linear':
    return x.T
  if kind == 'vocab_rows':
    return x[:cfg.vocab_size]
  if kind == 'vocab_cols':
    return x.T[:cfg.vocab_size]
  return x


def params_from_hf(read, names: set[str], model_cfg) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
  """Every lm_jax param from the checkpoint's tensors (an untied head without its own
  `lm_head.weight` starts as a copy of `shared.weight`)."""
  if model_cfg.tie_embeddings and 'lm_head.weight' in names and not np.array_equal(
      read('lm_head.weight'), read('shared.weight')):
    raise ConfigError('the checkpoint has an lm_head.weight apart from shared.weight, but its '
                      'config.json asks for scaled tied embeddings (T5 v1.0), which the encdec '
                      'family cannot combine with a separate head; set tie_word_embeddings '
                      'to false in config.json to load the head untied, unscaled (T5.1.1)')
  def get(name, kind):
    if name == 'lm_head.weight' and name not in names:
      name = 'shared.weight'
    return np.ascontiguousarray(_to_lm_jax(np.asarray(read(name)), kind, model_cfg))

  for path, name, kind in _layout(model_cfg):
    yield path, get(name, kind)
  for stack, per_layer in _per_layer(model_cfg):
    if model_cfg.scan_layers:  # one [layers, ...] array per param, under 'layers'
      for k, (path, _, kind) in enumerate(per_layer[0]):
        yield (stack, 'layers') + path, np.stack([get(rows[k][1], kind) for rows in per_layer])
    else:
      for i, rows in enumerate(per_layer):
        for path, name, kind in rows:
          yield (stack, f'layer_{i}') + path, get(name, kind)


def _at(params, path):
  node = params
  for key in path:
    node = node[key]
  return np.asarray(node)


def params_to_hf(params, model_cfg) -> Iterator[tuple[str, np.ndarray]]:
  """Every HF tensor of T5ForConditionalGeneration from lm_jax params."""
  cfg = model_cfg
  for path, name, kind in _layout(cfg):
    yield name, np.ascontiguousarray(_to_hf(_at(params, path), kind, cfg))
  for stack, per_layer in _per_layer(cfg):
    for i, rows in enumerate(per_layer):
      for path, name, kind in rows:
        value = (_at(params, (stack, 'layers') + path)[i] if cfg.scan_layers
                 else _at(params, (stack, f'layer_{i}') + path))
        yield name, np.ascontiguousarray(_to_hf(value, kind, cfg))


def config_from_hf(hf: dict) -> dict:
  """Dotted lm_jax config keys of a T5 config.json."""
  feed_forward = hf.get('feed_forward_proj', 'relu')
  if feed_forward not in FEED_FORWARDS:
    raise ConfigError(f'config.json feed_forward_proj={feed_forward!r}: the encdec family has '
                      f'the feed-forward layers {", ".join(map(repr, FEED_FORWARDS))}')
  layers = hf.get('num_layers', 6)
  return {
      'model.family': 'encdec',
      'model.vocab_size': hf.get('vocab_size', 32128),
      'model.vocab_multiple': 1,  # HF's embedding rows as they are
      'model.num_layers': layers,
      'model.d_model': hf.get('d_model', 512),
      'model.num_heads': hf.get('num_heads', 8),
      'model.head_dim': hf.get('d_kv', 64),
      'model.mlp_dim': hf.get('d_ff', 2048),
      'model.max_len': hf.get('n_positions', 512),
      'model.norm_eps': float(hf.get('layer_norm_epsilon', 1e-6)),
      # transformers 5 writes tie_word_embeddings true and says "no scaling" apart.
      'model.tie_embeddings': bool(hf.get('scale_decoder_outputs',
                                          hf.get('tie_word_embeddings', True))),
      'model.dropout': float(hf.get('dropout_rate', 0.1)),
      'model.encdec.num_decoder_layers': hf.get('num_decoder_layers') or layers,
      'model.encdec.relative_attention_num_buckets': hf.get('relative_attention_num_buckets', 32),
      'model.encdec.relative_attention_max_distance':
          hf.get('relative_attention_max_distance', 128),
      'model.encdec.feed_forward': feed_forward,
  }


def config_to_hf(config, model_cfg) -> dict:
  """A T5ForConditionalGeneration config.json of the resolved model."""
  cfg = model_cfg
  return {
      'model_type': 't5', 'architectures': ['T5ForConditionalGeneration'],
      'is_encoder_decoder': True, 'vocab_size': cfg.vocab_size, 'd_model': cfg.d_model,
      'd_kv': cfg.head_dim, 'd_ff': cfg.mlp_dim, 'num_layers': cfg.num_layers,
      'num_decoder_layers': cfg.num_decoder_layers, 'num_heads': cfg.num_heads,
      'relative_attention_num_buckets': cfg.relative_attention_num_buckets,
      'relative_attention_max_distance': cfg.relative_attention_max_distance,
      'dropout_rate': cfg.dropout, 'layer_norm_epsilon': cfg.norm_eps,
      'feed_forward_proj': cfg.feed_forward, 'tie_word_embeddings': cfg.tie_embeddings,
      'n_positions': config.model.max_len,
  }


MAPPING = HFMapping(
    model_types=('t5',),
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    params_from_hf=params_from_hf,
    params_to_hf=params_to_hf,
    ignored_hf_names=('encoder.embed_tokens.weight', 'decoder.embed_tokens.weight',
                      'lm_head.weight',
                      'decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight'),
)
