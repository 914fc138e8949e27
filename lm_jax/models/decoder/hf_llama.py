"""Llama (Hugging Face model_type 'llama') <-> the decoder with RoPE, RMSNorm and SwiGLU.

RoPE layout: HF's Llama rotates the halves (i, i + head_dim/2) of each head
(`rotate_half`; the interleaved pairs of Meta's original weights are permuted
into this layout by HF's own conversion script), with inverse frequencies
theta^(-2j/head_dim). lm_jax's `apply_rope` is that same rotate-half form, so
q_proj / k_proj rows map to heads without any permutation; the parity tests
(odd head counts, GQA) would catch an interleaved mix-up.

HF stores nn.Linear weights [out, in]; lm_jax kernels are [in, out] with the
heads split out: q_proj [N*H, D] -> query [D, N, H], o_proj [D, N*H] -> out
[N, H, D]. lm_jax's one `use_bias` switch means attention_bias = mlp_bias.
"""

from typing import Iterator, Mapping

import numpy as np

from lm_jax.errors import ConfigError
from lm_jax.models.decoder import hf_layout
from lm_jax.models.decoder.hf_layout import norm_leaf

MODEL_TYPE = 'llama'
# Present in some checkpoints (older HF versions saved it); HF recomputes it.
IGNORED = ('rotary_emb.inv_freq',)
_PROJ = {'query': 'q_proj', 'key': 'k_proj', 'value': 'v_proj'}


def _rope_theta(h: dict) -> float:
  """rope_theta from transformers 5's rope_parameters or 4's rope_theta / rope_scaling."""
  rope = h.get('rope_parameters') or h.get('rope_scaling') or {}
  rope_type = rope.get('rope_type', rope.get('type', 'default'))
  if rope_type != 'default':
    raise ConfigError(f'Llama config.json rope type {rope_type!r} (rope_parameters / '
                      'rope_scaling): lm_jax supports only the default RoPE (no scaling)')
  return float(rope.get('rope_theta', h.get('rope_theta', 10000.0)))


def config_from_hf(h: dict) -> dict:
  """lm_jax config keys of a LlamaConfig dict; ConfigError for what lm_jax cannot express."""
  if h.get('hidden_act', 'silu') != 'silu':
    raise ConfigError(f'Llama config.json hidden_act={h["hidden_act"]!r}: lm_jax\'s SwiGLU '
                      'uses silu')
  attn_bias, mlp_bias = h.get('attention_bias', False), h.get('mlp_bias', False)
  if attn_bias != mlp_bias:
    raise ConfigError(f'Llama config.json attention_bias={attn_bias} but mlp_bias={mlp_bias}: '
                      'lm_jax has one model.use_bias switch for both; they must be equal')
  d, heads = h['hidden_size'], h['num_attention_heads']
  return {
      'model.family': 'decoder', 'model.vocab_size': h['vocab_size'],
      'model.num_layers': h['num_hidden_layers'], 'model.d_model': d,
      'model.num_heads': heads, 'model.num_kv_heads': h.get('num_key_value_heads') or heads,
      'model.head_dim': h.get('head_dim') or d // heads,
      'model.mlp_dim': h['intermediate_size'], 'model.max_len': h['max_position_embeddings'],
      'model.position': 'rope', 'model.rope_theta': _rope_theta(h), 'model.norm': 'rmsnorm',
      'model.norm_eps': h.get('rms_norm_eps', 1e-6), 'model.mlp': 'swiglu',
      'model.use_bias': bool(attn_bias),
      'model.tie_embeddings': h.get('tie_word_embeddings', False),
  }


def config_to_hf(cfg) -> dict:
  """The LlamaConfig dict of a resolved decoder config; ConfigError if it is not Llama shaped."""
  wrong = [f'{k}={getattr(cfg, k)!r} (Llama: {v!r})' for k, v in (
      ('norm', 'rmsnorm'), ('mlp', 'swiglu'), ('position', 'rope')) if getattr(cfg, k) != v]
  if wrong:
    raise ConfigError('this decoder cannot be written as a Hugging Face Llama: config.model.'
                      + '; config.model.'.join(wrong))
  return {
      'model_type': MODEL_TYPE, 'architectures': ['LlamaForCausalLM'],
      'vocab_size': cfg.vocab_size, 'hidden_size': cfg.d_model,
      'intermediate_size': cfg.mlp_dim, 'num_hidden_layers': cfg.num_layers,
      'num_attention_heads': cfg.num_heads, 'num_key_value_heads': cfg.num_kv_heads,
      'head_dim': cfg.head_dim, 'max_position_embeddings': cfg.max_len,
      'rms_norm_eps': cfg.norm_eps, 'hidden_act': 'silu',
      # transformers 5 reads rope_parameters; 4.x reads rope_theta.
      'rope_parameters': {'rope_type': 'default', 'rope_theta': cfg.rope_theta},
      'rope_theta': cfg.rope_theta,
      'attention_bias': cfg.use_bias, 'mlp_bias': cfg.use_bias,
      'tie_word_embeddings': cfg.tie_embeddings, 'dtype': cfg.param_dtype,
  }


def params_from_hf(read, names: set[str], cfg) -> Iterator[tuple[tuple, np.ndarray]]:
  """(lm_jax path, array) of every param, read one HF tensor at a time."""
  del names
  D, H = cfg.d_model, cfg.head_dim
  heads = {'query': cfg.num_heads, 'key': cfg.num_kv_heads, 'value': cfg.num_kv_heads}

  def h(i, name):
    return read(f'model.layers.{i}.{name}')

  yield ('embed', 'embedding'), hf_layout.pad_rows(read('model.embed_tokens.weight'),
                                                   cfg.padded_vocab_size)
  leaves = {
      norm_leaf(cfg, 'attn_norm', 'scale'): lambda i: h(i, 'input_layernorm.weight'),
      norm_leaf(cfg, 'mlp_norm', 'scale'): lambda i: h(i, 'post_attention_layernorm.weight'),
  }
  for name, proj in _PROJ.items():
    n = heads[name]
    leaves[('attn', name, 'kernel')] = (
        lambda i, proj=proj, n=n: h(i, f'self_attn.{proj}.weight').T.reshape(D, n, H))
    if cfg.use_bias:
      leaves[('attn', name, 'bias')] = (
          lambda i, proj=proj, n=n: h(i, f'self_attn.{proj}.bias').reshape(n, H))
  leaves[('attn', 'out', 'kernel')] = (
      lambda i: h(i, 'self_attn.o_proj.weight').T.reshape(cfg.num_heads, H, D))
  for name, proj in (('gate', 'gate_proj'), ('up', 'up_proj'), ('down', 'down_proj')):
    leaves[('mlp', name, 'kernel')] = lambda i, proj=proj: h(i, f'mlp.{proj}.weight').T
  if cfg.use_bias:
    leaves[('attn', 'out', 'bias')] = lambda i: h(i, 'self_attn.o_proj.bias')
    for name, proj in (('gate', 'gate_proj'), ('up', 'up_proj'), ('down', 'down_proj')):
      leaves[('mlp', name, 'bias')] = lambda i, proj=proj: h(i, f'mlp.{proj}.bias')
  yield from hf_layout.block_leaves(cfg, leaves)
  yield norm_leaf(cfg, 'final_norm', 'scale'), read('model.norm.weight')
  if not cfg.tie_embeddings:
    yield ('lm_head', 'kernel'), hf_layout.pad_rows(read('lm_head.weight'),
                                                    cfg.padded_vocab_size).T


def params_to_hf(params: Mapping, cfg) -> Iterator[tuple[str, np.ndarray]]:
  """(HF tensor name, array) of a LlamaForCausalLM's weights."""
  V, D, H = cfg.vocab_size, cfg.d_model, cfg.head_dim
  get = hf_layout.get
  yield 'model.embed_tokens.weight', params['embed']['embedding'][:V]
  for i in range(cfg.num_layers):
    layer, p = hf_layout.layer_params(params, cfg, i), f'model.layers.{i}.'
    yield f'{p}input_layernorm.weight', get(layer, norm_leaf(cfg, 'attn_norm', 'scale'))
    yield (f'{p}post_attention_layernorm.weight',
           get(layer, norm_leaf(cfg, 'mlp_norm', 'scale')))
    attn = layer['attn']
    for name, proj in _PROJ.items():
      kernel = np.asarray(attn[name]['kernel'])
      yield f'{p}self_attn.{proj}.weight', kernel.reshape(D, -1).T
      if cfg.use_bias:
        yield f'{p}self_attn.{proj}.bias', np.reshape(attn[name]['bias'], (-1,))
    yield (f'{p}self_attn.o_proj.weight',
           np.asarray(attn['out']['kernel']).reshape(cfg.num_heads * H, D).T)
    if cfg.use_bias:
      yield f'{p}self_attn.o_proj.bias', attn['out']['bias']
    for name, proj in (('gate', 'gate_proj'), ('up', 'up_proj'), ('down', 'down_proj')):
      yield f'{p}mlp.{proj}.weight', np.asarray(layer['mlp'][name]['kernel']).T
      if cfg.use_bias:
        yield f'{p}mlp.{proj}.bias', layer['mlp'][name]['bias']
  yield 'model.norm.weight', get(params, norm_leaf(cfg, 'final_norm', 'scale'))
  if not cfg.tie_embeddings:
    yield 'lm_head.weight', np.asarray(params['lm_head']['kernel']).T[:V]
