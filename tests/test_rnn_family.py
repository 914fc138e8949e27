"""The rnn family against PyTorch's nn.LSTM / nn.GRU / nn.RNN with copied weights,
its document resets, hand-counted params and FLOPs, and sharding equivalence."""

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch

from lm_jax.config.defaults import base_config
from lm_jax.config.validate import validate
from lm_jax.errors import ConfigError
from lm_jax.models.registry import get_family
from tests.mesh_equivalence import assert_matches_single_device
from tests.sharded_setup import VOCAB, tiny_config

TORCH = {'lstm': torch.nn.LSTM, 'gru': torch.nn.GRU, 'rnn': torch.nn.RNN}


def _model_cfg(cell, d_model=16, hidden=24, layers=2, tie=True):
  m = base_config().model
  m.family = 'rnn'
  m.update(num_layers=layers, d_model=d_model, tie_embeddings=tie)
  m.rnn.update(cell=cell, hidden_size=hidden)
  return m


def _init(cell, **kw):
  module, cfg = get_family('rnn').build(_model_cfg(cell, **kw), VOCAB)
  tokens = np.random.default_rng(0).integers(0, VOCAB, (3, 11)).astype(np.int32)
  params = nn.meta.unbox(module.init(jax.random.PRNGKey(1), tokens)['params'])
  params = jax.tree.map(lambda p: p + 0.1 * np.random.default_rng(2).standard_normal(p.shape)
                        .astype(np.float32), params)  # nonzero biases too
  return module, cfg, params, tokens


def _torch_logits(cell, cfg, params, tokens):
  """The same network in PyTorch: embedding -> torch RNN stack -> (proj) -> head."""
  G, H = cfg.num_gates, cfg.hidden_size
  rnn = TORCH[cell](cfg.d_model, H, num_layers=cfg.num_layers, batch_first=True)
  t = lambda a: torch.tensor(np.asarray(a, np.float32))
  with torch.no_grad():
    for l in range(cfg.num_layers):
      layer = params[f'layer_{l}']
      w_in, w_rec = np.asarray(layer['kernel']), np.asarray(layer['recurrent']['kernel'])
      getattr(rnn, f'weight_ih_l{l}').copy_(t(w_in.reshape(w_in.shape[0], G * H).T))
      getattr(rnn, f'weight_hh_l{l}').copy_(t(w_rec.reshape(H, G * H).T))
      getattr(rnn, f'bias_ih_l{l}').copy_(t(np.asarray(layer['bias']).reshape(-1)))
      b_hh = np.zeros((G, H), np.float32)
      if cell == 'gru':  # b_hn sits inside r * (W_hn h + b_hn)
        b_hh[2] = layer['recurrent']['bias']
      getattr(rnn, f'bias_hh_l{l}').copy_(t(b_hh.reshape(-1)))
    embed = t(params['embed']['embedding'])
    h, _ = rnn(embed[torch.tensor(tokens, dtype=torch.long)])
    if cfg.projects_output:
      h = h @ t(params['out_proj']['kernel'])
    head = embed.T if cfg.tie_embeddings else t(params['lm_head']['kernel'])
    return (h @ head).numpy()[..., :VOCAB]


@pytest.mark.parametrize('cell,tie', [('lstm', True), ('gru', True), ('rnn', False)])
def test_logits_match_torch(cell, tie):
  module, cfg, params, tokens = _init(cell, tie=tie)
  logits = np.asarray(module.apply({'params': params}, tokens))
  np.testing.assert_allclose(logits[..., :VOCAB], _torch_logits(cell, cfg, params, tokens),
                             rtol=1e-4, atol=1e-5)
  assert np.all(logits[..., VOCAB:] <= -1e8)  # padded vocabulary rows get no mass


@pytest.mark.parametrize('cell', ['gru'])
def test_state_resets_where_a_packed_document_starts(cell):
  module, _, params, tokens = _init(cell)
  start = 5
  segment_ids = np.ones_like(tokens)
  segment_ids[:, start:] = 2
  packed = np.asarray(module.apply({'params': params}, tokens, segment_ids_BxL=segment_ids))
  alone = np.asarray(module.apply({'params': params}, tokens[:, start:]))
  np.testing.assert_allclose(packed[:, start:], alone, rtol=1e-5, atol=1e-6)
  unpacked = np.asarray(module.apply({'params': params}, tokens))
  assert np.abs(unpacked[:, start:] - alone).max() > 1e-3  # without ids the state flows on


@pytest.mark.parametrize('cell,redundant_torch_biases', [('lstm', 4), ('gru', 2), ('rnn', 1)])
def test_param_count_matches_torch_and_the_tree(cell, redundant_torch_biases):
  module, cfg, params, _ = _init(cell)  # D 16, H 24, 2 layers, tied: projects 24 -> 16
  torch_stack = sum(p.numel() for p in TORCH[cell](16, 24, num_layers=2).parameters())
  # Torch has two biases per gate; one of each redundant pair is not a parameter here.
  stack = torch_stack - 2 * redundant_torch_biases * 24
  embedding, out_proj = 64 * 16, 24 * 16  # vocab 61 padded to 64
  counts = get_family('rnn').num_params(cfg)
  assert counts == {'total': embedding + stack + out_proj, 'embedding': embedding,
                    'non_embedding': stack + out_proj}
  assert counts['total'] == sum(p.size for p in jax.tree.leaves(params))


def test_lstm_flops_per_token_by_hand():
  _, cfg = get_family('rnn').build(_model_cfg('lstm', tie=False), VOCAB)
  # D 16, H 24, 4 gates, 2 layers, untied head over 64 padded rows.
  expected = 2 * (16 * 96 + 24 * 96) + 2 * 2 * 24 * 96 + 2 * 24 * 64
  got = get_family('rnn').flops_per_token(cfg, 128)
  assert got['forward'] == expected and got['train'] == 3 * expected


def test_2x2x2_mesh_gives_single_device_loss_and_grads():
  m = _model_cfg('lstm', d_model=16, hidden=32, layers=1)
  grads = assert_matches_single_device(m, dict(data=2, fsdp=2, tensor=2))
  spec = grads['layer_0']['recurrent']['kernel'].sharding.spec
  assert tuple(spec) == ('fsdp', None, 'tensor')  # hidden split over tensor, inputs over fsdp


def test_refuses_sequence_parallelism_and_unsplittable_hidden():
  c = tiny_config(_model_cfg('lstm'), dict(sequence=2))
  with pytest.raises(ConfigError, match='mesh.sequence'):
    validate(c, device_count=2)
  c = tiny_config(_model_cfg('gru', hidden=30), dict(tensor=4))
  with pytest.raises(ConfigError, match='model.rnn.hidden_size=30'):
    validate(c, device_count=4)
  c = tiny_config(_model_cfg('lstm'), {})
  c.model.rnn.cell = 'transformer'
  with pytest.raises(ConfigError, match="model.rnn.cell='transformer'"):
    validate(c, device_count=1)
  c = tiny_config(_model_cfg('lstm'), {})
  c.model.num_heads = 2
  with pytest.raises(ConfigError, match='model.num_heads'):
    validate(c, device_count=1)


@pytest.mark.parametrize('family', ['rnn', 'cnn'])
def test_document_masked_lm_batches_reach_the_model_as_segment_ids(family):
  from lm_jax.build import build  # pylint: disable=g-import-not-at-top
  m = _model_cfg('lstm') if family == 'rnn' else base_config().model
  m.family = family
  c = tiny_config(m, {})
  c.data.document_mask = True
  built = build(c, VOCAB, jax.devices()[:1])
  inputs = built.family.model_inputs(built.example_batch())
  assert set(inputs) == {'inputs_BxL', 'segment_ids_BxL'}
