"""The BERT mapping against Hugging Face: a tiny random BertForPreTraining (3 heads, no hub)
read into the lm_jax encoder gives HF's MLM and NSP logits on a padded batch; exported back,
a fresh HF model gives them again; the round trip returns the same arrays."""

import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.models.registry import get_family
from lm_jax.objectives import make_objective

_WHY = "needs the 'hf' extra (pip install -e '.[hf]')"
safetensors_numpy = pytest.importorskip('safetensors.numpy', reason=_WHY)
torch = pytest.importorskip('torch', reason=_WHY)
transformers = pytest.importorskip('transformers', reason=_WHY)

V, D, HEADS, LAYERS, F, P = 99, 48, 3, 2, 80, 32


def _hf_model(tmp_path):
  cfg = transformers.BertConfig(
      vocab_size=V, hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
      intermediate_size=F, max_position_embeddings=P, hidden_dropout_prob=0.0,
      attention_probs_dropout_prob=0.0)
  torch.manual_seed(0)
  model = transformers.BertForPreTraining(cfg).eval()
  with torch.no_grad():  # move every weight off its init (LayerNorms 1/0, biases 0)
    for param in model.parameters():
      param.add_(0.1 * torch.randn_like(param))
  model.save_pretrained(tmp_path)
  return model


def _inputs():
  rng = np.random.default_rng(0)
  ids = rng.integers(0, V, (2, 12))
  types = np.zeros((2, 12), np.int64)
  types[:, 7:] = 1
  valid = np.ones((2, 12), np.int64)
  valid[1, 8:] = 0  # row 1 is padded after 8 tokens
  return ids, types, valid


def _hf_logits(model, ids, types, valid):
  with torch.no_grad():
    out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(types),
                attention_mask=torch.tensor(valid))
  return out.prediction_logits.numpy(), out.seq_relationship_logits.numpy()


def _lm_jax(hf_dir, scan_layers):
  mapping = get_family('encoder').hf
  c = base_config()
  hf_config = json.load(open(os.path.join(hf_dir, 'config.json')))
  for key, value in mapping.config_from_hf(hf_config).items():
    *parents, leaf = key.split('.')
    node = c
    for part in parents:
      node = node[part]
    node[leaf] = value
  c.model.scan_layers = scan_layers
  c.model.dropout = 0.0
  module, model_cfg = get_family('encoder').build(c.model, V)
  tensors = safetensors_numpy.load_file(os.path.join(hf_dir, 'model.safetensors'))
  read = []
  params = {}
  for path, value in mapping.params_from_hf(lambda n: read.append(n) or tensors[n],
                                            set(tensors), model_cfg):
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  assert set(read) == set(tensors) - set(mapping.ignored_hf_names)  # every tensor, once
  return c, module, model_cfg, params


def _run(module, params, ids, types, valid):
  out = module.apply({'params': params}, ids.astype(np.int32),
                     token_types_BxL=types.astype(np.int32), padding_mask_BxL=valid.astype(bool))
  return np.asarray(out['logits'])[..., :V], np.asarray(out['nsp_logits'])


@pytest.mark.parametrize('scan_layers', [False, True])
def test_hf_bert_logits_round_trip(tmp_path, scan_layers):
  hf_dir = str(tmp_path / 'hf')
  model = _hf_model(hf_dir)
  ids, types, valid = _inputs()
  want_mlm, want_nsp = _hf_logits(model, ids, types, valid)
  c, module, model_cfg, params = _lm_jax(hf_dir, scan_layers)
  # The structure init gives, with every leaf mapped.
  init = nn.unbox(jax.eval_shape(module.init, jax.random.PRNGKey(0),
                                 ids.astype(np.int32))['params'])
  assert jax.tree.map(np.shape, params) == jax.tree.map(lambda a: a.shape, init)
  mlm, nsp = _run(module, params, ids, types, valid)
  assert np.abs(mlm - want_mlm).max() <= 1e-4
  assert np.abs(nsp - want_nsp).max() <= 1e-4

  mapping = get_family('encoder').hf
  out_dir = tmp_path / 'export'
  out_dir.mkdir()
  exported = dict(mapping.params_to_hf(params, model_cfg))
  safetensors_numpy.save_file(exported, str(out_dir / 'model.safetensors'))
  (out_dir / 'config.json').write_text(json.dumps(mapping.config_to_hf(c, model_cfg)))
  fresh = transformers.BertForPreTraining.from_pretrained(str(out_dir)).eval()
  again_mlm, again_nsp = _hf_logits(fresh, ids, types, valid)
  np.testing.assert_allclose(again_mlm, want_mlm, atol=1e-5)
  np.testing.assert_allclose(again_nsp, want_nsp, atol=1e-5)

  back = dict(mapping.params_from_hf(exported.__getitem__, set(exported), model_cfg))
  for path, value in jax.tree_util.tree_leaves_with_path(params):
    key = tuple(k.key for k in path)
    np.testing.assert_array_equal(back[key], value)


def test_mlm_objective_equals_hf_pretraining_loss(tmp_path):
  """BertForPreTraining's loss (mean MLM CE over labelled tokens + mean NSP CE) is ours."""
  hf_dir = str(tmp_path / 'hf')
  model = _hf_model(hf_dir)
  ids, types, valid = _inputs()
  valid[:] = 1
  weights = np.zeros(ids.shape, np.float32)
  weights[:, [2, 5, 9]] = 1.0  # the same count in every row, as the mlm task makes them
  nsp_labels = np.array([0, 1])
  with torch.no_grad():
    want = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(types),
                 labels=torch.tensor(np.where(weights > 0, ids, -100)),
                 next_sentence_label=torch.tensor(nsp_labels)).loss.item()
  c, module, model_cfg, params = _lm_jax(hf_dir, False)
  c.objective.name = 'mlm'
  outputs = module.apply({'params': params}, ids.astype(np.int32),
                         token_types_BxL=types.astype(np.int32))
  batch = {'targets': ids.astype(np.int32), 'weights': weights,
           'nsp_labels': nsp_labels.astype(np.int32)}
  total, _, weight = make_objective(c, model_cfg)(outputs, batch)
  np.testing.assert_allclose(float(total / weight), want, rtol=1e-5)
