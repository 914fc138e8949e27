"""The gated CNN family against a PyTorch Conv1d + GLU network with copied weights;
causality by perturbation; hand-counted params and FLOPs; sharding equivalence."""

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


def _model_cfg(d_model=16, channels=24, kernel=3, layers=2, pre_norm=True):
  m = base_config().model
  m.family = 'cnn'
  m.update(num_layers=layers, d_model=d_model)
  m.cnn.update(kernel_size=kernel, channels=channels, pre_norm=pre_norm)
  return m


def _init(seq=12, **kw):
  module, cfg = get_family('cnn').build(_model_cfg(**kw), VOCAB)
  tokens = np.random.default_rng(0).integers(0, VOCAB, (2, seq)).astype(np.int32)
  params = nn.meta.unbox(module.init(jax.random.PRNGKey(1), tokens)['params'])
  params = jax.tree.map(lambda p: p + 0.1 * np.random.default_rng(2).standard_normal(p.shape)
                        .astype(np.float32), params)
  return module, cfg, params, tokens


def _torch_logits(cfg, params, tokens):
  """Embedding -> (x + W_out glu(Conv1d(x) cut to causal)) per block -> tied head."""
  K, C, L = cfg.kernel_size, cfg.channels, tokens.shape[1]
  t = lambda a: torch.tensor(np.asarray(a, np.float32))
  with torch.no_grad():
    embed = t(params['embed']['embedding'])
    x = embed[torch.tensor(tokens, dtype=torch.long)]  # [B, L, D]
    for i in range(cfg.num_layers):
      block = params[f'block_{i}']
      conv = torch.nn.Conv1d(cfg.d_model, 2 * C, K, padding=K - 1)
      kernel = np.asarray(block['kernel'])  # [K, D, 2, C]
      conv.weight.copy_(t(kernel.transpose(2, 3, 1, 0).reshape(2 * C, cfg.d_model, K)))
      conv.bias.copy_(t(np.asarray(block['bias']).reshape(-1)))
      g = torch.nn.functional.glu(conv(x.transpose(1, 2))[:, :, :L], dim=1).transpose(1, 2)
      x = x + g @ t(block['out_proj']['kernel'])
    return (x @ embed.T).numpy()[..., :VOCAB]


def test_logits_match_torch_conv1d_glu():
  module, cfg, params, tokens = _init(pre_norm=False)
  logits = np.asarray(module.apply({'params': params}, tokens))
  np.testing.assert_allclose(logits[..., :VOCAB], _torch_logits(cfg, params, tokens),
                             rtol=1e-4, atol=1e-4)


def test_changing_token_t_changes_no_earlier_logit_and_the_next_receptive_field():
  module, cfg, params, tokens = _init(seq=16, kernel=3, layers=2)
  t = 7
  changed = tokens.copy()
  changed[:, t] = (changed[:, t] + 1) % VOCAB
  a = np.asarray(module.apply({'params': params}, tokens))
  b = np.asarray(module.apply({'params': params}, changed))
  np.testing.assert_array_equal(a[:, :t], b[:, :t])
  reach = cfg.num_layers * (cfg.kernel_size - 1)  # 2 blocks of 3 taps see 4 tokens back
  assert np.all(np.abs(a[:, t:t + reach + 1] - b[:, t:t + reach + 1]).max(-1) > 1e-6)
  np.testing.assert_array_equal(a[:, t + reach + 1:], b[:, t + reach + 1:])


def test_taps_stop_at_a_packed_document_start():
  module, _, params, tokens = _init(seq=12)
  start = 5
  segment_ids = np.ones_like(tokens)
  segment_ids[:, start:] = 2
  packed = np.asarray(module.apply({'params': params}, tokens, segment_ids_BxL=segment_ids))
  alone = np.asarray(module.apply({'params': params}, tokens[:, start:]))
  np.testing.assert_allclose(packed[:, start:], alone, rtol=1e-5, atol=1e-5)


def test_param_count_and_flops_by_hand():
  _, cfg, params, _ = _init()  # D 16, C 24, K 3, 2 blocks, pre-norm LayerNorm without bias
  block = 3 * 16 * 48 + 48 + 24 * 16 + 16  # conv, conv bias, out_proj, norm scale
  counts = get_family('cnn').num_params(cfg)
  assert counts == {'total': 64 * 16 + 2 * block + 16, 'embedding': 64 * 16,
                    'non_embedding': 2 * block + 16}
  assert counts['total'] == sum(p.size for p in jax.tree.leaves(params))
  expected = 2 * (2 * 3 * 16 * 48 + 2 * 24 * 16) + 2 * 16 * 64
  got = get_family('cnn').flops_per_token(cfg, 128)
  assert got['forward'] == expected and got['train'] == 3 * expected


def test_2x2x2_mesh_gives_single_device_loss_and_grads():
  grads = assert_matches_single_device(_model_cfg(layers=1, channels=32),
                                       dict(data=2, fsdp=2, tensor=2))
  assert tuple(grads['block_0']['kernel'].sharding.spec) == (None, 'fsdp', None, 'tensor')


def test_refuses_bad_kernel_and_unsplittable_channels():
  c = tiny_config(_model_cfg(), {})
  c.model.cnn.kernel_size = 0
  with pytest.raises(ConfigError, match='model.cnn.kernel_size=0'):
    validate(c, device_count=1)
  c = tiny_config(_model_cfg(channels=30), dict(tensor=4))
  with pytest.raises(ConfigError, match='model.cnn.channels=30'):
    validate(c, device_count=4)
  c = tiny_config(_model_cfg(), {})
  c.model.rnn.cell = 'gru'
  with pytest.raises(ConfigError, match='model.rnn.cell'):
    validate(c, device_count=1)
