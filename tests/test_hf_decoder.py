"""The decoder's GPT-2 and Llama mappings against Hugging Face's own models (CPU, fp32).

Expected values are HF transformers' logits, loss and torch autograd gradients
of tiny random models built locally.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hf_models
from hf_models import VOCAB, torch

TOL = 1e-4

CASES = {
    'gpt2_tied': lambda: hf_models.gpt2(tied=True),
    'gpt2_untied': lambda: hf_models.gpt2(tied=False),
    'llama_gqa3to1_untied': lambda: hf_models.llama(heads=6, kv_heads=2, tied=False),
    'llama_3heads_tied_bias': lambda: hf_models.llama(heads=3, kv_heads=3, tied=True, bias=True),
}


def _ids(shape, seed=1):
  return np.random.default_rng(seed).integers(0, VOCAB, shape).astype(np.int32)


def _apply(module, params, ids, **kw):
  return np.asarray(module.apply({'params': params}, jnp.asarray(ids), **kw))


@pytest.mark.parametrize('case,scan', [(c, False) for c in CASES] + [
    ('gpt2_untied', True), ('llama_gqa3to1_untied', True)])
def test_logits_equal_hf(case, scan):
  hf = CASES[case]()
  module, _, params = hf_models.build_lm(hf, scan_layers=scan)
  ids = _ids((2, 16))
  got = _apply(module, params, ids)[..., :VOCAB]
  np.testing.assert_allclose(got, hf_models.hf_logits(hf, ids), atol=TOL, rtol=0)


@pytest.mark.parametrize('case', ['gpt2_untied', 'llama_gqa3to1_untied'])
def test_left_padded_batch_equals_hf(case):
  """Left padding: the padding mask and per-row positions give HF's logits on real tokens."""
  hf = CASES[case]()
  module, _, params = hf_models.build_lm(hf)
  ids = _ids((2, 12))
  valid = np.ones((2, 12), np.int32)
  valid[1, :5] = 0
  positions = np.maximum(np.cumsum(valid, axis=1) - 1, 0).astype(np.int32)
  got = _apply(module, params, ids, positions_BxL=positions, padding_mask_BxL=valid)
  want = hf_models.hf_logits(hf, ids, attention_mask=valid, position_ids=positions)
  real = valid.astype(bool)
  np.testing.assert_allclose(got[..., :VOCAB][real], want[real], atol=TOL, rtol=0)


@pytest.mark.parametrize('case', ['gpt2_tied', 'llama_gqa3to1_untied'])
def test_packed_batch_equals_each_document_alone(case):
  """Packed documents (segment ids, restarting positions) = HF run on each document."""
  hf = CASES[case]()
  module, _, params = hf_models.build_lm(hf)
  lengths = (5, 7, 4)
  docs = [_ids((1, n), seed=10 + i) for i, n in enumerate(lengths)]
  packed = np.concatenate(docs, axis=1)
  segments = np.concatenate([np.full((1, n), i + 1) for i, n in enumerate(lengths)], axis=1)
  positions = np.concatenate([np.arange(n)[None] for n in lengths], axis=1)
  got = _apply(module, params, packed, positions_BxL=positions.astype(np.int32),
               segment_ids_BxL=segments.astype(np.int32))[..., :VOCAB]
  want = np.concatenate([hf_models.hf_logits(hf, d) for d in docs], axis=1)
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_gpt2_loss_and_gradients_equal_torch():
  """Mean next-token loss and every parameter's gradient, against torch autograd."""
  from lm_jax.objectives import make_objective
  from lm_jax.models.registry import get_family
  hf = hf_models.gpt2(tied=True)
  config = hf_models.lm_config(hf)
  module, model_cfg = get_family('decoder').build(config.model, VOCAB)
  params = hf_models.lm_params(hf, model_cfg)
  objective = make_objective(config, model_cfg)
  ids = _ids((2, 17))
  batch = {'inputs': ids[:, :-1], 'targets': ids[:, 1:],
           'weights': np.ones((2, 16), np.float32)}

  def loss_fn(p):
    logits = module.apply({'params': p}, jnp.asarray(batch['inputs']))
    total, _, weight = objective({'logits': logits}, batch)
    return total / weight

  loss, grads = jax.value_and_grad(loss_fn)(params)

  hf.zero_grad()
  logits = hf(input_ids=torch.tensor(batch['inputs'], dtype=torch.long)).logits
  want_loss = torch.nn.functional.cross_entropy(
      logits.reshape(-1, VOCAB), torch.tensor(batch['targets'], dtype=torch.long).reshape(-1))
  want_loss.backward()
  np.testing.assert_allclose(float(loss), float(want_loss.detach()), atol=1e-5, rtol=0)
  torch_grads = {n: p.grad.numpy() for n, p in hf.named_parameters()}
  want = get_family('decoder').hf.params_from_hf(torch_grads.__getitem__, set(torch_grads),
                                                 model_cfg)
  for path, want_grad in want:
    got = grads
    for key in path:
      got = got[key]
    np.testing.assert_allclose(np.asarray(got), want_grad, atol=1e-5, rtol=0,
                               err_msg='/'.join(path))


# (gpt2_tied and llama_untied_bias go through files in test_hf_interop's round trip.)
@pytest.mark.parametrize('case', ['gpt2_untied', 'llama_3heads_tied_bias'])
def test_export_mapping_inverts_import(case):
  """params_to_hf(params_from_hf(HF)) gives back HF's state dict exactly."""
  from lm_jax.models.registry import get_family
  hf = CASES[case]()
  _, model_cfg, params = hf_models.build_lm(hf)
  state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
  exported = dict(get_family('decoder').hf.params_to_hf(params, model_cfg))
  if model_cfg.tie_embeddings:
    state.pop('lm_head.weight', None)
  assert set(exported) == set(state)
  for name, array in exported.items():
    np.testing.assert_array_equal(array, state[name], err_msg=name)
