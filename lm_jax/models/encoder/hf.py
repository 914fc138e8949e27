"""Hugging Face BERT (`model_type` 'bert') <-> the lm_jax encoder: config and weights.

Reads BertForPreTraining (MLM + NSP heads) and BertForMaskedLM (MLM head only)
checkpoints; writes BertForPreTraining when the model has its NSP head, else
BertForMaskedLM. Layouts: a torch Linear weight is [out, in], an lm_jax kernel
[in, out]; attention kernels keep their heads apart ([D, N, H] for q/k/v,
[N, H, D] for the output). The embedding and MLM decoder bias are padded with
zero rows to the padded vocabulary (the model masks those logits) and cut back
on export. The MLM decoder weight is the word embedding (tied), so it is never
read or written.
"""

from typing import Callable, Iterator, Mapping

import numpy as np

from lm_jax.errors import ConfigError
from lm_jax.models.encoder.config import EncoderConfig
from lm_jax.models.hf_mapping import HFMapping, ParamPath

_LN = ('LayerNorm_0',)  # lm_jax's Norm wraps one flax LayerNorm


def config_from_hf(hf: dict) -> dict:
  """{dotted lm_jax config key: value} of a BERT config.json."""
  for key, want in (('hidden_act', 'gelu'), ('position_embedding_type', 'absolute')):
    if hf.get(key, want) != want:
      raise ConfigError(f'config.json {key}={hf[key]!r}: the lm_jax encoder supports only '
                        f'{want!r} (exact GELU, learned absolute positions)')
  if hf.get('is_decoder') or hf.get('add_cross_attention'):
    raise ConfigError('config.json is_decoder / add_cross_attention: the lm_jax encoder is '
                      'bidirectional, without cross-attention')
  d_model, heads = hf['hidden_size'], hf['num_attention_heads']
  if d_model % heads:
    raise ConfigError(f'config.json hidden_size={d_model} is not divisible by '
                      f'num_attention_heads={heads}')
  architectures = hf.get('architectures') or ()
  nsp = any(a in ('BertForPreTraining', 'BertForNextSentencePrediction')
            for a in architectures)
  return {
      'model.family': 'encoder', 'model.vocab_size': hf['vocab_size'],
      'model.num_layers': hf['num_hidden_layers'], 'model.d_model': d_model,
      'model.num_heads': heads, 'model.mlp_dim': hf['intermediate_size'],
      'model.max_len': hf['max_position_embeddings'],
      'model.norm_eps': float(hf.get('layer_norm_eps', 1e-12)), 'model.use_bias': True,
      'model.dropout': float(hf.get('hidden_dropout_prob', 0.1)),
      'model.init_std': float(hf.get('initializer_range', 0.02)),
      'model.encoder.norm_position': 'post',
      'model.encoder.type_vocab_size': hf.get('type_vocab_size', 2),
      'model.encoder.nsp_head': nsp,
  }


def config_to_hf(config, model_cfg: EncoderConfig) -> dict:
  """The config.json of model_cfg as a BertForPreTraining / BertForMaskedLM."""
  del config
  cfg = model_cfg
  if cfg.norm_position != 'post':
    raise ConfigError("config.model.encoder.norm_position='pre': Hugging Face BERT is post-LN; "
                      'only a post-LN encoder can be exported')
  if not cfg.use_bias:
    raise ConfigError('config.model.use_bias=False: Hugging Face BERT has biases in every '
                      'projection and LayerNorm; only use_bias=True can be exported')
  if cfg.num_heads * cfg.head_dim != cfg.d_model:
    raise ConfigError(f'config.model.head_dim={cfg.head_dim}: Hugging Face BERT needs '
                      f'num_heads * head_dim = d_model ({cfg.num_heads} * {cfg.head_dim} != '
                      f'{cfg.d_model})')
  return {
      'model_type': 'bert',
      'architectures': ['BertForPreTraining' if cfg.nsp_head else 'BertForMaskedLM'],
      'vocab_size': cfg.vocab_size, 'hidden_size': cfg.d_model,
      'num_hidden_layers': cfg.num_layers, 'num_attention_heads': cfg.num_heads,
      'intermediate_size': cfg.mlp_dim, 'hidden_act': 'gelu',
      'max_position_embeddings': cfg.max_len, 'type_vocab_size': cfg.type_vocab_size,
      'layer_norm_eps': cfg.norm_eps, 'hidden_dropout_prob': cfg.dropout,
      'attention_probs_dropout_prob': 0.0, 'initializer_range': cfg.init_std,
      'position_embedding_type': 'absolute', 'tie_word_embeddings': True,
      'dtype': cfg.param_dtype,
  }


def _layer_map(cfg: EncoderConfig, i: int, p: str):
  """(lm_jax path inside one layer, HF name, hf -> lm_jax, lm_jax -> hf) of layer i."""
  D, N, H = cfg.d_model, cfg.num_heads, cfg.head_dim
  base = f'{p}encoder.layer.{i}.'
  qkv_in = (lambda w: w.T.reshape(D, N, H), lambda k: k.reshape(D, N * H).T)
  head_bias = (lambda b: b.reshape(N, H), lambda b: b.reshape(N * H))
  out_in = (lambda w: w.T.reshape(N, H, D), lambda k: k.reshape(N * H, D).T)
  same = (lambda x: x, lambda x: x)
  linear = (lambda w: w.T, lambda k: k.T)
  rows = []
  for name in ('query', 'key', 'value'):
    rows += [(('attn', name, 'kernel'), f'{base}attention.self.{name}.weight', *qkv_in),
             (('attn', name, 'bias'), f'{base}attention.self.{name}.bias', *head_bias)]
  rows += [(('attn', 'out', 'kernel'), f'{base}attention.output.dense.weight', *out_in),
           (('attn', 'out', 'bias'), f'{base}attention.output.dense.bias', *same),
           (('mlp', 'up', 'kernel'), f'{base}intermediate.dense.weight', *linear),
           (('mlp', 'up', 'bias'), f'{base}intermediate.dense.bias', *same),
           (('mlp', 'down', 'kernel'), f'{base}output.dense.weight', *linear),
           (('mlp', 'down', 'bias'), f'{base}output.dense.bias', *same)]
  for norm, hf_norm in (('attn_norm', 'attention.output.LayerNorm'),
                        ('mlp_norm', 'output.LayerNorm')):
    rows += [((norm,) + _LN + ('scale',), f'{base}{hf_norm}.weight', *same),
             ((norm,) + _LN + ('bias',), f'{base}{hf_norm}.bias', *same)]
  return rows


def _top_map(cfg: EncoderConfig, p: str):
  """(lm_jax path, HF name, hf -> lm_jax, lm_jax -> hf) outside the layers."""
  V, Vp = cfg.vocab_size, cfg.padded_vocab_size
  pad = (lambda x: np.concatenate([x, np.zeros((Vp - V,) + x.shape[1:], x.dtype)]),
         lambda x: x[:V])
  same = (lambda x: x, lambda x: x)
  linear = (lambda w: w.T, lambda k: k.T)
  rows = [(('embed', 'embedding'), f'{p}embeddings.word_embeddings.weight', *pad),
          (('pos_embed', 'embedding'), f'{p}embeddings.position_embeddings.weight', *same),
          (('type_embed', 'embedding'), f'{p}embeddings.token_type_embeddings.weight', *same),
          (('embed_norm',) + _LN + ('scale',), f'{p}embeddings.LayerNorm.weight', *same),
          (('embed_norm',) + _LN + ('bias',), f'{p}embeddings.LayerNorm.bias', *same),
          (('mlm_dense', 'kernel'), 'cls.predictions.transform.dense.weight', *linear),
          (('mlm_dense', 'bias'), 'cls.predictions.transform.dense.bias', *same),
          (('mlm_norm',) + _LN + ('scale',), 'cls.predictions.transform.LayerNorm.weight', *same),
          (('mlm_norm',) + _LN + ('bias',), 'cls.predictions.transform.LayerNorm.bias', *same),
          (('mlm_decoder', 'bias'), 'cls.predictions.bias', *pad)]
  if cfg.nsp_head:
    rows += [(('pooler', 'kernel'), f'{p}pooler.dense.weight', *linear),
             (('pooler', 'bias'), f'{p}pooler.dense.bias', *same),
             (('nsp', 'kernel'), 'cls.seq_relationship.weight', *linear),
             (('nsp', 'bias'), 'cls.seq_relationship.bias', *same)]
  return rows


def _spelled(name: str, names: set[str]) -> str:
  """`name`, or the old TF-converted spelling (LayerNorm.gamma / .beta) the checkpoint has."""
  if name in names or '.LayerNorm.' not in name:
    return name
  old = name.replace('LayerNorm.weight', 'LayerNorm.gamma').replace('LayerNorm.bias',
                                                                    'LayerNorm.beta')
  return old if old in names else name


def params_from_hf(read: Callable[[str], np.ndarray], names: set[str],
                   model_cfg: EncoderConfig) -> Iterator[tuple[ParamPath, np.ndarray]]:
  """(lm_jax param path, array) for every encoder param, read from HF BERT tensors."""
  cfg = model_cfg
  p = 'bert.' if any(n.startswith('bert.') for n in names) else ''

  def get(name, convert):
    return np.asarray(convert(np.asarray(read(_spelled(name, names)))))

  for path, name, to_lm, _ in _top_map(cfg, p):
    yield path, get(name, to_lm)
  per_layer = [_layer_map(cfg, i, p) for i in range(cfg.num_layers)]
  if cfg.scan_layers:  # one [layers, ...] array per param, under 'layers'
    for k, (path, *_) in enumerate(per_layer[0]):
      yield ('layers',) + path, np.stack([get(rows[k][1], rows[k][2]) for rows in per_layer])
  else:
    for i, rows in enumerate(per_layer):
      for path, name, to_lm, _ in rows:
        yield (f'layer_{i}',) + path, get(name, to_lm)


def _at(params: Mapping, path: ParamPath) -> np.ndarray:
  node = params
  for key in path:
    node = node[key]
  return np.asarray(node)


def params_to_hf(params: Mapping, model_cfg: EncoderConfig
                 ) -> Iterator[tuple[str, np.ndarray]]:
  """(HF tensor name, array) of a BertForPreTraining / BertForMaskedLM checkpoint."""
  cfg, p = model_cfg, 'bert.'
  for path, name, _, to_hf in _top_map(cfg, p):
    yield name, np.ascontiguousarray(to_hf(_at(params, path)))
  for i in range(cfg.num_layers):
    for path, name, _, to_hf in _layer_map(cfg, i, p):
      value = (_at(params, ('layers',) + path)[i] if cfg.scan_layers
               else _at(params, (f'layer_{i}',) + path))
      yield name, np.ascontiguousarray(to_hf(value))


HF_MAPPING = HFMapping(
    model_types=('bert',),
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    params_from_hf=params_from_hf,
    params_to_hf=params_to_hf,
    ignored_hf_names=('bert.embeddings.position_ids', 'cls.predictions.decoder.weight',
                      'cls.predictions.decoder.bias'),
)
