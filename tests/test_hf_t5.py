"""Hugging Face T5 <-> the encdec family, on tiny random T5ForConditionalGeneration
models (v1.0: ReLU, tied and scaled; v1.1: gated-GELU, own lm_head): the mapped
params give HF's logits on a padded batch, the exported checkpoint loads into a fresh
HF model with the same logits, and the round trip is exact."""

import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
from safetensors.numpy import load_file, save_file  # noqa: E402

from lm_jax.config.defaults import base_config  # noqa: E402
from lm_jax.models.encdec.hf import MAPPING  # noqa: E402
from lm_jax.models.registry import get_family, model_fns  # noqa: E402

VOCAB = 100


def _hf_model(tmp_path, v11: bool):
  """A tiny random HF T5 saved to tmp_path/hf; v1.1 gets its own random lm_head."""
  torch.manual_seed(0)
  cfg = transformers.T5Config(
      vocab_size=VOCAB, d_model=48, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2,
      num_heads=3, relative_attention_num_buckets=8, relative_attention_max_distance=20,
      dropout_rate=0.0, feed_forward_proj='gated-gelu' if v11 else 'relu',
      tie_word_embeddings=not v11)
  model = transformers.T5ForConditionalGeneration(cfg)
  with torch.no_grad():  # HF's init is tiny for norms; spread everything a little
    for p in model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  path = str(tmp_path / 'hf')
  model.save_pretrained(path)
  if v11:
    file = os.path.join(path, 'model.safetensors')
    tensors = load_file(file)
    tensors['lm_head.weight'] = np.random.default_rng(1).normal(
        size=(VOCAB, 48)).astype(np.float32)
    save_file(tensors, file, metadata={'format': 'pt'})
  return path, transformers.T5ForConditionalGeneration.from_pretrained(path).eval()


def _lm_jax_model(hf_config: dict):
  c = base_config()
  for key, value in MAPPING.config_from_hf(hf_config).items():
    *parents, leaf = key.split('.')
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  family = get_family('encdec')
  module, cfg = family.build(c.model, VOCAB)
  return c, cfg, model_fns(family, module)


def _nest(items):
  tree = {}
  for path, value in items:
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def _batch():
  rng = np.random.default_rng(0)
  valid = np.ones((2, 11), np.int64)
  valid[1, 7:] = 0
  return {'encoder_inputs': rng.integers(0, VOCAB, (2, 11)), 'encoder_valid': valid,
          'decoder_inputs': rng.integers(0, VOCAB, (2, 25))}


def _hf_logits(model, batch):
  with torch.no_grad():
    return model(input_ids=torch.tensor(batch['encoder_inputs']),
                 attention_mask=torch.tensor(batch['encoder_valid']),
                 decoder_input_ids=torch.tensor(batch['decoder_inputs'])).logits.numpy()


@pytest.mark.parametrize('v11', [False, True], ids=['v1_0', 'v1_1'])
def test_t5_import_export(tmp_path, v11):
  path, hf_model = _hf_model(tmp_path, v11)
  with open(os.path.join(path, 'config.json')) as f:
    hf_config = json.load(f)
  config, cfg, fns = _lm_jax_model(hf_config)
  assert cfg.tie_embeddings == (not v11)
  tensors = load_file(os.path.join(path, 'model.safetensors'))
  params = _nest(MAPPING.params_from_hf(tensors.__getitem__, set(tensors), cfg))
  batch = {k: v.astype(np.int32) for k, v in _batch().items()}
  expected = nn.unbox(jax.eval_shape(fns.init, jax.random.PRNGKey(0), batch)['params'])
  assert jax.tree.map(lambda x: x.shape, params) == jax.tree.map(lambda x: x.shape, expected)

  want = _hf_logits(hf_model, _batch())
  got = np.asarray(fns.apply({'params': params}, batch)['logits'])
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)

  # Export: a fresh HF model loads it and gives the same logits.
  out = tmp_path / 'export'
  out.mkdir()
  exported = dict(MAPPING.params_to_hf(params, cfg))
  save_file(exported, str(out / 'model.safetensors'), metadata={'format': 'pt'})
  (out / 'config.json').write_text(json.dumps(MAPPING.config_to_hf(config, cfg)))
  fresh = transformers.T5ForConditionalGeneration.from_pretrained(str(out)).eval()
  np.testing.assert_allclose(_hf_logits(fresh, _batch()), want, atol=1e-5, rtol=1e-5)
  state = {k: v.numpy() for k, v in fresh.state_dict().items()}
  for name, value in tensors.items():
    np.testing.assert_array_equal(state[name], value, err_msg=name)

  # Round trip: identical params.
  back = _nest(MAPPING.params_from_hf(exported.__getitem__, set(exported), cfg))
  jax.tree.map(np.testing.assert_array_equal, back, params)
