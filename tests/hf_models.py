"""Tiny random Hugging Face models built locally (no hub), and lm_jax params read from them."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

from lm_jax.config.defaults import base_config  # noqa: E402
from lm_jax.models.registry import get_family  # noqa: E402

VOCAB = 101  # not a multiple of vocab_multiple: the embedding is padded


def gpt2(tied=True, seed=0, vocab=VOCAB, **kw):
  """A random GPT2LMHeadModel: 3 heads of 8, 2 layers, an odd vocabulary."""
  torch.manual_seed(seed)
  cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=128, n_embd=24, n_layer=2,
                                n_head=3, tie_word_embeddings=tied, resid_pdrop=0.0,
                                embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                eos_token_id=0, **kw)
  return _randomize(transformers.GPT2LMHeadModel(cfg))


def llama(heads=6, kv_heads=2, tied=False, bias=False, seed=0, vocab=VOCAB, **kw):
  """A random LlamaForCausalLM (GQA 3:1 by default), 2 layers, an odd vocabulary."""
  torch.manual_seed(seed)
  cfg = transformers.LlamaConfig(
      vocab_size=vocab, hidden_size=24, intermediate_size=40, num_hidden_layers=2,
      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=128,
      tie_word_embeddings=tied, attention_bias=bias, mlp_bias=bias, rms_norm_eps=1e-5,
      rope_theta=500.0, **kw)
  return _randomize(transformers.LlamaForCausalLM(cfg))


def _randomize(model):
  """Norm scales and biases away from HF's 1 / 0 init, so a mixed-up one shows."""
  with torch.no_grad():
    for name, p in model.named_parameters():
      if p.ndim == 1:
        p.copy_(torch.randn_like(p) * 0.5 + (1.0 if 'weight' in name else 0.0))
  return model.eval()


def lm_config(hf_model, **model_overrides):
  """lm_jax's base config with the decoder mapping's keys for `hf_model` (and overrides)."""
  config = base_config()
  mapping = get_family('decoder').hf
  keys = mapping.config_from_hf(hf_model.config.to_dict())
  keys.update({f'model.{k}': v for k, v in model_overrides.items()})
  for dotted, value in keys.items():
    section, key = dotted.split('.')
    config[section][key] = value
  return config


def lm_params(hf_model, model_cfg):
  """The decoder mapping's params (nested dict of np arrays) from `hf_model`'s state dict."""
  state = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
  tree = {}
  for path, array in get_family('decoder').hf.params_from_hf(state.__getitem__, set(state),
                                                              model_cfg):
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    assert path[-1] not in node, path
    node[path[-1]] = np.asarray(array, np.float32)
  return tree


def build_lm(hf_model, **model_overrides):
  """(module, model_cfg, params) of the lm_jax decoder holding hf_model's weights."""
  config = lm_config(hf_model, **model_overrides)
  module, model_cfg = get_family('decoder').build(config.model, VOCAB)
  params = lm_params(hf_model, model_cfg)
  expected = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                                np.zeros((1, 4), np.int32)))['params']
  expected = jax.tree.map(lambda x: x.value.shape, expected,
                          is_leaf=lambda x: hasattr(x, 'value'))
  got = jax.tree.map(lambda a: a.shape, params)
  assert got == expected
  return module, model_cfg, params


def hf_logits(hf_model, ids_BxL, attention_mask=None, position_ids=None):
  with torch.no_grad():
    out = hf_model(input_ids=torch.tensor(ids_BxL, dtype=torch.long),
                   attention_mask=None if attention_mask is None
                   else torch.tensor(attention_mask),
                   position_ids=None if position_ids is None else torch.tensor(position_ids))
  return out.logits.numpy()
