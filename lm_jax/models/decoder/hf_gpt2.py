"""GPT-2 (Hugging Face model_type 'gpt2') <-> the decoder with learned positions.

HF's GPT-2 uses Conv1D layers whose weights are stored [in, out], as lm_jax
kernels are (no transpose); q, k and v are one fused `c_attn` [D, 3D] that is
split by thirds. GELU is `gelu_new` (tanh approximation), the decoder's
`jax.nn.gelu(approximate=True)`. Every linear layer and LayerNorm has a bias.
"""

from typing import Iterator, Mapping

import numpy as np

from lm_jax.errors import ConfigError
from lm_jax.models.decoder import hf_layout
from lm_jax.models.decoder.hf_layout import norm_leaf

MODEL_TYPE = 'gpt2'
# Both are the tanh approximation of GELU (HF's NewGELU and PyTorch's 'tanh').
_TANH_GELUS = ('gelu_new', 'gelu_pytorch_tanh')
# Causal-mask buffers older checkpoints saved; HF recomputes them.
IGNORED = ('attn.bias', 'attn.masked_bias')


def config_from_hf(h: dict) -> dict:
  """lm_jax config keys of a GPT2Config dict; ConfigError for what lm_jax cannot express."""
  act = h.get('activation_function', 'gelu_new')
  if act not in _TANH_GELUS:
    raise ConfigError(f'GPT-2 config.json activation_function={act!r}: lm_jax\'s GELU is the '
                      f'tanh approximation; supported: {", ".join(_TANH_GELUS)}')
  for key, want in (('scale_attn_weights', True), ('scale_attn_by_inverse_layer_idx', False),
                    ('add_cross_attention', False)):
    if h.get(key, want) != want:
      raise ConfigError(f'GPT-2 config.json {key}={h[key]!r}: lm_jax supports only {want}')
  d, heads = h['n_embd'], h['n_head']
  if d % heads:
    raise ConfigError(f'GPT-2 config.json n_embd={d} is not divisible by n_head={heads}')
  return {
      'model.family': 'decoder', 'model.vocab_size': h['vocab_size'],
      'model.num_layers': h['n_layer'], 'model.d_model': d, 'model.num_heads': heads,
      'model.num_kv_heads': 0, 'model.head_dim': 0,
      'model.mlp_dim': h.get('n_inner') or 4 * d, 'model.max_len': h['n_positions'],
      'model.position': 'learned', 'model.norm': 'layernorm',
      'model.norm_eps': h.get('layer_norm_epsilon', 1e-5), 'model.mlp': 'gelu',
      'model.use_bias': True, 'model.tie_embeddings': h.get('tie_word_embeddings', True),
  }


def config_to_hf(cfg) -> dict:
  """The GPT2Config dict of a resolved decoder config; ConfigError if it is not GPT-2 shaped."""
  wrong = [f'{k}={getattr(cfg, k)!r} (GPT-2: {v!r})' for k, v in (
      ('norm', 'layernorm'), ('mlp', 'gelu'), ('use_bias', True), ('position', 'learned'))
           if getattr(cfg, k) != v]
  if cfg.num_kv_heads != cfg.num_heads or cfg.head_dim * cfg.num_heads != cfg.d_model:
    wrong.append(f'num_kv_heads={cfg.num_kv_heads}, head_dim={cfg.head_dim} (GPT-2: '
                 'num_kv_heads = num_heads and head_dim = d_model / num_heads)')
  if wrong:
    raise ConfigError('this decoder cannot be written as a Hugging Face GPT-2: config.model.'
                      + '; config.model.'.join(wrong))
  return {
      'model_type': MODEL_TYPE, 'architectures': ['GPT2LMHeadModel'],
      'vocab_size': cfg.vocab_size, 'n_positions': cfg.max_len, 'n_embd': cfg.d_model,
      'n_layer': cfg.num_layers, 'n_head': cfg.num_heads, 'n_inner': cfg.mlp_dim,
      'activation_function': 'gelu_new', 'layer_norm_epsilon': cfg.norm_eps,
      'resid_pdrop': cfg.dropout, 'embd_pdrop': cfg.dropout, 'attn_pdrop': 0.0,
      'scale_attn_weights': True, 'tie_word_embeddings': cfg.tie_embeddings,
      'dtype': cfg.param_dtype,
  }


def _prefix(names: set[str]) -> str:
  """'transformer.' (GPT2LMHeadModel) or '' (the original checkpoints' GPT2Model names)."""
  return '' if 'wte.weight' in names and 'transformer.wte.weight' not in names else 'transformer.'


def params_from_hf(read, names: set[str], cfg) -> Iterator[tuple[tuple, np.ndarray]]:
  """(lm_jax path, array) of every param, read one HF tensor at a time."""
  p = _prefix(names)
  D, N, H = cfg.d_model, cfg.num_heads, cfg.head_dim

  def h(i, name):
    return read(f'{p}h.{i}.{name}')

  def qkv(part, kind):
    if kind == 'kernel':
      return lambda i: h(i, 'attn.c_attn.weight')[:, part * D:(part + 1) * D].reshape(D, N, H)
    return lambda i: h(i, 'attn.c_attn.bias')[part * D:(part + 1) * D].reshape(N, H)

  yield ('embed', 'embedding'), hf_layout.pad_rows(read(f'{p}wte.weight'),
                                                   cfg.padded_vocab_size)
  yield ('pos_embed', 'embedding'), read(f'{p}wpe.weight')
  leaves = {}
  for norm, hf in (('attn_norm', 'ln_1'), ('mlp_norm', 'ln_2')):
    leaves[norm_leaf(cfg, norm, 'scale')] = lambda i, hf=hf: h(i, f'{hf}.weight')
    leaves[norm_leaf(cfg, norm, 'bias')] = lambda i, hf=hf: h(i, f'{hf}.bias')
  for part, name in enumerate(('query', 'key', 'value')):
    leaves[('attn', name, 'kernel')] = qkv(part, 'kernel')
    leaves[('attn', name, 'bias')] = qkv(part, 'bias')
  leaves[('attn', 'out', 'kernel')] = lambda i: h(i, 'attn.c_proj.weight').reshape(N, H, D)
  leaves[('attn', 'out', 'bias')] = lambda i: h(i, 'attn.c_proj.bias')
  leaves[('mlp', 'up', 'kernel')] = lambda i: h(i, 'mlp.c_fc.weight')
  leaves[('mlp', 'up', 'bias')] = lambda i: h(i, 'mlp.c_fc.bias')
  leaves[('mlp', 'down', 'kernel')] = lambda i: h(i, 'mlp.c_proj.weight')
  leaves[('mlp', 'down', 'bias')] = lambda i: h(i, 'mlp.c_proj.bias')
  yield from hf_layout.block_leaves(cfg, leaves)
  yield norm_leaf(cfg, 'final_norm', 'scale'), read(f'{p}ln_f.weight')
  yield norm_leaf(cfg, 'final_norm', 'bias'), read(f'{p}ln_f.bias')
  if not cfg.tie_embeddings:
    yield ('lm_head', 'kernel'), hf_layout.pad_rows(read('lm_head.weight'),
                                                    cfg.padded_vocab_size).T


def params_to_hf(params: Mapping, cfg) -> Iterator[tuple[str, np.ndarray]]:
  """(HF tensor name, array) of a GPT2LMHeadModel's weights."""
  V, D = cfg.vocab_size, cfg.d_model
  get = hf_layout.get
  yield 'transformer.wte.weight', params['embed']['embedding'][:V]
  yield 'transformer.wpe.weight', params['pos_embed']['embedding']
  for i in range(cfg.num_layers):
    layer, p = hf_layout.layer_params(params, cfg, i), f'transformer.h.{i}.'
    for norm, hf in (('attn_norm', 'ln_1'), ('mlp_norm', 'ln_2')):
      yield f'{p}{hf}.weight', get(layer, norm_leaf(cfg, norm, 'scale'))
      yield f'{p}{hf}.bias', get(layer, norm_leaf(cfg, norm, 'bias'))
    attn = layer['attn']
    yield f'{p}attn.c_attn.weight', np.concatenate(
        [np.reshape(attn[n]['kernel'], (D, D)) for n in ('query', 'key', 'value')], axis=1)
    yield f'{p}attn.c_attn.bias', np.concatenate(
        [np.reshape(attn[n]['bias'], (D,)) for n in ('query', 'key', 'value')])
    yield f'{p}attn.c_proj.weight', np.reshape(attn['out']['kernel'], (D, D))
    yield f'{p}attn.c_proj.bias', attn['out']['bias']
    mlp = layer['mlp']
    yield f'{p}mlp.c_fc.weight', mlp['up']['kernel']
    yield f'{p}mlp.c_fc.bias', mlp['up']['bias']
    yield f'{p}mlp.c_proj.weight', mlp['down']['kernel']
    yield f'{p}mlp.c_proj.bias', mlp['down']['bias']
  yield 'transformer.ln_f.weight', get(params, norm_leaf(cfg, 'final_norm', 'scale'))
  yield 'transformer.ln_f.bias', get(params, norm_leaf(cfg, 'final_norm', 'bias'))
  if not cfg.tie_embeddings:
    yield 'lm_head.weight', np.asarray(params['lm_head']['kernel']).T[:V]
