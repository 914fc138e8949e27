"""The T5 family: relative position buckets by hand, masks (encoder padding,
decoder causality) by perturbation, parameter count by the param tree."""

import jax
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.models.encdec.relative_position import relative_position_bucket
from lm_jax.models.registry import get_family, model_fns


def test_buckets_by_hand():
  # 32 buckets, max distance 128. Bidirectional: 16 per side, exact below 8,
  # log-spaced 8..15 up to distance 128; keys after the query use 16 + bucket.
  rel = np.array([0, -1, -7, -8, -12, -127, -128, -1000, 1, 7, 200], np.int32)
  got = relative_position_bucket(rel, True, 32, 128)
  # -12: 8 + floor(log(12/8) / log(128/8) * 8) = 8 + floor(1.169) = 9
  np.testing.assert_array_equal(got, [0, 1, 7, 8, 9, 15, 15, 15, 17, 23, 31])
  # Causal: keys after the query all land in bucket 0; 16 exact, then log to 31.
  rel = np.array([5, 0, -1, -15, -16, -24, -200], np.int32)
  got = relative_position_bucket(rel, False, 32, 128)
  # -24: 16 + floor(log(24/16) / log(128/16) * 16) = 16 + floor(3.119) = 19
  np.testing.assert_array_equal(got, [0, 0, 1, 15, 16, 19, 31])


def _tiny(feed_forward='relu', tie=True):
  c = base_config()
  c.model.update(family='encdec', num_layers=2, d_model=32, num_heads=4, max_len=64,
                 tie_embeddings=tie, init_std=0.3)
  c.model.encdec.update(feed_forward=feed_forward, num_decoder_layers=3)
  family = get_family('encdec')
  module, cfg = family.build(c.model, 50)
  return family, model_fns(family, module), cfg


def _batch(rng, S=10, T=6):
  return {'encoder_inputs': rng.integers(0, 50, (2, S)).astype(np.int32),
          'encoder_valid': np.array([[1] * S, [1] * (S - 4) + [0] * 4], np.int32),
          'decoder_inputs': rng.integers(0, 50, (2, T)).astype(np.int32)}


@pytest.mark.parametrize('feed_forward,tie', [('relu', True), ('gated-gelu', False)])
def test_padding_and_causality(feed_forward, tie):
  family, fns, cfg = _tiny(feed_forward, tie)
  rng = np.random.default_rng(0)
  batch = _batch(rng)
  variables = fns.init(jax.random.PRNGKey(0), batch)
  logits = np.asarray(fns.apply(variables, batch)['logits'])
  assert logits.shape == (2, 6, cfg.padded_vocab_size)
  # Padded encoder keys are invisible: other tokens there change nothing.
  other = dict(batch, encoder_inputs=batch['encoder_inputs'].copy())
  other['encoder_inputs'][1, -4:] = (other['encoder_inputs'][1, -4:] + 1) % 50
  np.testing.assert_allclose(fns.apply(variables, other)['logits'][1], logits[1], atol=1e-5)
  # ... but a real encoder token does change the outputs.
  other['encoder_inputs'][1, 0] = (other['encoder_inputs'][1, 0] + 1) % 50
  assert np.abs(np.asarray(fns.apply(variables, other)['logits'][1]) - logits[1]).max() > 1e-4
  # Decoder position t never sees later decoder tokens.
  later = dict(batch, decoder_inputs=batch['decoder_inputs'].copy())
  later['decoder_inputs'][:, 3:] = (later['decoder_inputs'][:, 3:] + 1) % 50
  changed = np.asarray(fns.apply(variables, later)['logits'])
  np.testing.assert_allclose(changed[:, :3], logits[:, :3], atol=1e-5)
  assert np.abs(changed[:, 3:] - logits[:, 3:]).max() > 1e-4
  # The padded vocabulary rows get no probability.
  assert (logits[..., 50:] < -1e8).all()
  # Parameter count: the analytic formula equals the tree.
  tree_count = sum(x.size for x in jax.tree.leaves(variables['params']))
  assert family.num_params(cfg)['total'] == tree_count


def test_config_errors_name_the_key():
  from lm_jax.config.validate import validate
  from lm_jax.errors import ConfigError
  c = base_config()
  c.model.family = 'encdec'
  c.data.task = 'span_corruption'
  validate(c, device_count=1)
  for key, value, match in (('encdec.feed_forward', 'swiglu', 'model.encdec.feed_forward'),
                            ('position', 'rope', 'does not use it'),
                            ('encdec.relative_attention_num_buckets', 7, 'even int')):
    bad = base_config()
    bad.model.family, bad.data.task = 'encdec', 'span_corruption'
    *parents, leaf = key.split('.')
    node = bad.model
    for p in parents:
      node = node[p]
    node[leaf] = value
    with pytest.raises(ConfigError, match=match):
      validate(bad, device_count=1)
  c.data.task = 'lm'
  with pytest.raises(ConfigError, match="trains on the tasks 'span_corruption', 'seq2seq'"):
    validate(c, device_count=1)
