"""The encoder (BERT) module: parameter count, bidirectional attention, padding and packing masks."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.errors import ConfigError
from lm_jax.config.validate import validate
from lm_jax.models.registry import get_family

L = 12


def _built(**own):
  m = base_config().model
  m.family = 'encoder'
  m.update(num_layers=2, d_model=32, num_heads=4, max_len=L, use_bias=True)
  m.encoder.update(own)
  module, cfg = get_family('encoder').build(m, 61)
  tokens = np.random.default_rng(0).integers(0, 61, (2, L), dtype=np.int32)
  variables = module.init(jax.random.PRNGKey(0), tokens)
  return module, cfg, variables, tokens


@pytest.mark.parametrize('own', [dict(), dict(norm_position='pre', nsp_head=True)])
def test_num_params_counts_every_initialised_weight(own):
  _, cfg, variables, _ = _built(**own)
  leaves = jax.tree.leaves(nn.unbox(variables['params']))
  assert get_family('encoder').num_params(cfg)['total'] == sum(a.size for a in leaves)


def test_attention_is_bidirectional():
  module, _, variables, tokens = _built()
  changed = tokens.copy()
  changed[:, -1] = (changed[:, -1] + 1) % 61
  a = module.apply(variables, tokens)['logits']
  b = module.apply(variables, changed)['logits']
  # A causal model would leave position 0 unchanged; an encoder sees the last token.
  assert np.abs(np.asarray(a[:, 0] - b[:, 0])).max() > 1e-4


def test_padding_keys_are_invisible():
  module, _, variables, tokens = _built(nsp_head=True)
  valid = np.ones((2, L), bool)
  valid[:, 8:] = False
  other = tokens.copy()
  other[:, 8:] = (other[:, 8:] + 7) % 61
  a = module.apply(variables, tokens, padding_mask_BxL=valid)
  b = module.apply(variables, other, padding_mask_BxL=valid)
  np.testing.assert_allclose(a['logits'][:, :8], b['logits'][:, :8], atol=1e-5)
  np.testing.assert_allclose(a['nsp_logits'], b['nsp_logits'], atol=1e-5)


def test_packed_documents_do_not_see_each_other():
  module, _, variables, tokens = _built()
  segments = np.repeat(np.array([[1] * 5 + [2] * 7]), 2, axis=0)
  alone = module.apply(variables, tokens[:, :5])['logits']
  # Positions restart per document, as a packed batch gives them.
  positions = np.concatenate([np.arange(5), np.arange(7)])[None].repeat(2, 0)
  packed = module.apply(variables, tokens, positions_BxL=positions,
                        segment_ids_BxL=segments)['logits']
  np.testing.assert_allclose(packed[:, :5], alone, atol=1e-5)


def test_nsp_without_the_head_is_refused():
  c = base_config()
  c.model.family = 'encoder'
  c.data.nsp = True
  with pytest.raises(ConfigError, match='config.model.encoder.nsp_head'):
    validate(c, device_count=1)


def test_train_flops_match_xla_gradient():
  """XLA's count of the gradient = the analytic matmul count + 1-3% of non-matmul work.

  At d_model 256 / L 128 the smallest parts (attention scores, values, the MLM transform)
  are each 3.4% of the total, so a missing or doubled one leaves [1, 1.035] (measured 1.023).
  """
  import jax.numpy as jnp
  from lm_jax.objectives.mlm import MaskedLM
  B, V = 2, 500
  m = base_config().model
  m.family = 'encoder'
  m.update(num_layers=2, d_model=256, num_heads=4, max_len=128, use_bias=True)
  m.encoder.nsp_head = True
  family = get_family('encoder')
  model, cfg = family.build(m, V)
  x = jnp.zeros((B, 128), jnp.int32)
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), x)['params'])
  batch = {'inputs': x, 'targets': x, 'weights': jnp.ones((B, 128)),
           'nsp_labels': jnp.zeros((B,), jnp.int32)}

  def loss(p, b):
    return MaskedLM(vocab_size=V)(model.apply({'params': p}, b['inputs']), b)[0]

  cost = jax.jit(jax.grad(loss)).lower(params, batch).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  ratio = cost['flops'] / (family.flops_per_token(cfg, 128)['train'] * B * 128)
  assert 1.0 <= ratio <= 1.035, ratio


def test_bert_base_config_is_bert_base():
  from lm_jax.config import load_config
  from tests.config_fixtures import ROOT
  c = load_config(str(ROOT / 'configs' / 'bert_base.py'))
  m = c.model
  assert (m.num_layers, m.d_model, m.num_heads, m.mlp_dim, m.max_len) == (12, 768, 12, 3072, 512)
  assert c.data.seq_len == 512 and c.data.nsp and m.encoder.nsp_head
  # A 30522-token BPE + 6 special slots = 30528 ids (a multiple of 64: no padding rows).
  _, cfg = get_family('encoder').build(m, 30522 + 6)
  # Hugging Face's BertForPreTraining(bert-base-uncased config) has 110,106,428 parameters
  # at vocab 30522; 6 more ids add 6 embedding rows of 768 and 6 decoder biases.
  assert get_family('encoder').num_params(cfg)['total'] == 110_106_428 + 6 * 768 + 6


def test_plan_says_plainly_it_does_not_model_the_encoder():
  from lm_jax.config import load_config
  from lm_jax.plan import command
  from tests.config_fixtures import ROOT
  config = load_config(str(ROOT / 'configs' / 'bert_base.py'))
  with pytest.raises(ConfigError, match=r"family='encoder' is not modelled"):
    command.plan_command(config, ['--devices', '8', '--device', 'h100'])
