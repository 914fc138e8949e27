"""lm_jax.interop: import / export of Hugging Face model directories (tiny random models).

Expected values come from transformers itself: the original model's logits
and state dict, and what from_pretrained loads back from an export.
"""

import json
import os

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import hf_models
from hf_models import VOCAB, transformers
from lm_jax.config.defaults import base_config
from lm_jax.errors import ConfigError
from lm_jax.interop import export_hf, import_hf
from lm_jax.interop import hf_import as import_lib
from lm_jax.build import build

TOL = 1e-4


def _ids(shape=(2, 9), seed=0):
  return np.random.default_rng(seed).integers(0, VOCAB, shape).astype(np.int32)


def _save(model, directory, **kw):
  model.save_pretrained(directory, **kw)
  return str(directory)


def _state(model):
  state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  if model.config.tie_word_embeddings:
    state.pop('lm_head.weight', None)
  return state


def _exported_tensors(out_dir):
  index = os.path.join(out_dir, 'model.safetensors.index.json')
  if not os.path.exists(index):
    return load_file(os.path.join(out_dir, 'model.safetensors'))
  with open(index) as f:
    files = sorted(set(json.load(f)['weight_map'].values()))
  tensors = {}
  for name in files:
    tensors.update(load_file(os.path.join(out_dir, name)))
  return tensors


@pytest.mark.parametrize('make', [lambda: hf_models.gpt2(tied=True),
                                  lambda: hf_models.llama(tied=False, bias=True)],
                         ids=['gpt2_tied', 'llama_untied_bias'])
def test_round_trip_gives_identical_arrays_and_hf_reloads(tmp_path, make):
  hf = make()
  import_hf(_save(hf, tmp_path / 'hf'), str(tmp_path / 'run'), devices=jax.devices()[:1])
  summary = export_hf(str(tmp_path / 'run'), str(tmp_path / 'out'))
  assert summary['step'] == 0
  exported, original = _exported_tensors(str(tmp_path / 'out')), _state(hf)
  assert set(exported) == set(original)
  for name, array in original.items():
    np.testing.assert_array_equal(exported[name], array, err_msg=name)
  back = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / 'out')).eval()
  ids = _ids()
  np.testing.assert_array_equal(hf_models.hf_logits(back, ids), hf_models.hf_logits(hf, ids))


def test_sharded_checkpoint_imports_and_exports_sharded(tmp_path):
  hf = hf_models.llama()
  hf_dir = _save(hf, tmp_path / 'hf', max_shard_size='20KB')
  assert os.path.exists(os.path.join(hf_dir, 'model.safetensors.index.json'))
  import_hf(hf_dir, str(tmp_path / 'run'), devices=jax.devices()[:1])
  export_hf(str(tmp_path / 'run'), str(tmp_path / 'out'), max_shard_bytes=20_000)
  assert os.path.exists(os.path.join(tmp_path / 'out', 'model.safetensors.index.json'))
  back = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / 'out')).eval()
  ids = _ids()
  np.testing.assert_allclose(hf_models.hf_logits(back, ids), hf_models.hf_logits(hf, ids),
                             atol=1e-6, rtol=0)


def _logits(built, params, ids):
  import flax.linen as nn
  apply = jax.jit(lambda p, x: built.fns.apply({'params': p}, {'inputs': x})['logits'])
  with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    return np.asarray(apply(params, ids))


def test_weights_on_2x2x2_mesh_give_single_device_logits(tmp_path):
  hf = hf_models.llama(heads=6, kv_heads=2)
  hf_dir = _save(hf, tmp_path / 'hf')
  ids = _ids((16, 16))
  logits = {}
  for name, devices, mesh in (('single', jax.devices()[:1], {}),
                              ('2x2x2', jax.devices(), dict(data=2, fsdp=2, tensor=2))):
    config = base_config()
    config.mesh.update(mesh)
    config, _, _ = import_lib.import_config(hf_dir, str(tmp_path / name), config)
    config.data.seq_len = 16
    built = build(config, config.model.vocab_size, devices=devices)
    params = import_lib.read_params(built, hf_dir)
    logits[name] = _logits(built, params, ids)
    if name == '2x2x2':  # really split: the query kernel's heads over `tensor`
      query = params['layer_0']['attn']['query']['kernel']
      assert len(query.sharding.device_set) == 8
      assert query.addressable_shards[0].data.shape != query.shape
  np.testing.assert_allclose(logits['2x2x2'], logits['single'], atol=1e-5, rtol=0)
  np.testing.assert_allclose(logits['single'][..., :VOCAB], hf_models.hf_logits(hf, ids),
                             atol=TOL, rtol=0)


def test_unsupported_architecture_names_the_supported_ones(tmp_path):
  hf_dir = _save(hf_models.gpt2(), tmp_path / 'hf')
  with open(os.path.join(hf_dir, 'config.json')) as f:
    cfg = json.load(f)
  cfg['model_type'] = 'mamba'
  with open(os.path.join(hf_dir, 'config.json'), 'w') as f:
    json.dump(cfg, f)
  with pytest.raises(ConfigError, match=r"model_type='mamba' is not supported.*'gpt2'.*'llama'"):
    import_hf(hf_dir, str(tmp_path / 'run'))


def test_missing_and_unexpected_tensors_are_listed(tmp_path):
  hf_dir = _save(hf_models.llama(), tmp_path / 'hf')
  path = os.path.join(hf_dir, 'model.safetensors')
  tensors = load_file(path)
  del tensors['model.layers.1.mlp.up_proj.weight'], tensors['model.norm.weight']
  tensors['model.layers.0.extra.weight'] = np.zeros(3, np.float32)
  save_file(tensors, path, metadata={'format': 'pt'})
  with pytest.raises(ConfigError) as e:
    import_hf(hf_dir, str(tmp_path / 'run'))
  msg = str(e.value)
  assert 'missing tensors (2): model.layers.1.mlp.up_proj.weight, model.norm.weight' in msg
  assert 'unexpected tensors (1): model.layers.0.extra.weight' in msg
  assert not os.path.exists(tmp_path / 'run' / 'checkpoints')


def test_shape_mismatch_names_tensor_and_shapes(tmp_path):
  hf_dir = _save(hf_models.gpt2(), tmp_path / 'hf')
  with open(os.path.join(hf_dir, 'config.json')) as f:
    cfg = json.load(f)
  cfg['n_inner'] = 64  # the weights have 96
  with open(os.path.join(hf_dir, 'config.json'), 'w') as f:
    json.dump(cfg, f)
  with pytest.raises(ConfigError, match=r'shape mismatches \(6\): transformer\.h\.0\.mlp\.c_fc'
                     r'\.bias: checkpoint \(96,\), this config needs \(64,\)'):
    import_hf(hf_dir, str(tmp_path / 'run'))


def test_pickle_only_directory_is_refused(tmp_path):
  hf_dir = tmp_path / 'hf'
  _save(hf_models.gpt2(), hf_dir)
  os.rename(hf_dir / 'model.safetensors', hf_dir / 'pytorch_model.bin')
  with pytest.raises(ConfigError, match='pytorch_model.bin, which lm_jax never loads'):
    import_hf(str(hf_dir), str(tmp_path / 'run'))


def test_tokenizer_larger_than_vocabulary_is_refused(tmp_path):
  from lm_jax.data.tokenizers import BpeTokenizer
  hf_dir = _save(hf_models.gpt2(), tmp_path / 'hf')
  BpeTokenizer.train('some text ' * 50, 260).hf.save(os.path.join(hf_dir, 'tokenizer.json'))
  with pytest.raises(ConfigError, match=r'tokenizer.json has \d+ token ids, but the model\'s '
                     r'vocab_size is 101'):
    import_hf(hf_dir, str(tmp_path / 'run'))
