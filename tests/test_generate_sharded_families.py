"""rnn and encdec decoding under a data x tensor mesh give the single-device tokens and logits."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from lm_jax.build import build
from lm_jax.config.defaults import base_config
from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig

VOCAB = 61
PROMPTS = [[5, 9, 2, 44, 7], [3], [8, 8, 1], [1, 2], [60, 3, 3, 3], [7], [9, 9], [4, 5, 6]]


def _config(family: str):
  c = base_config()
  c.model.update(family=family, num_layers=2, d_model=32, init_std=0.3)
  if family == 'encdec':
    c.model.update(num_heads=4, head_dim=8, mlp_dim=64, max_len=32, tie_embeddings=False)
    c.data.update(task='seq2seq', seq_len=16, target_len=8)
  else:
    c.model.rnn.update(cell='lstm', hidden_size=32)
    c.data.seq_len = 16
  c.mesh.update({'data': 2, 'tensor': 4})
  c.train.update(global_batch_size=8, eval_every=0)
  return c


@pytest.mark.slow  # a mesh of 8 and two compiles per family
@pytest.mark.parametrize('family', ['rnn', 'encdec'])
def test_sharded_decoding_equals_single_device(family):
  built = build(_config(family), VOCAB, jax.devices()[:8])
  state = built.init_state(0)
  sample_cfg = SampleConfig(temperature=1.0, top_k=10)
  single = Generator(built.family.decoding, built.model_cfg, jax.device_get(state.params),
                     sample_cfg, bucket=8)
  ref, ref_logits = single.generate(PROMPTS, 5, seed=2, keep_logits=True)
  with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    sharded = Generator(built.family.decoding, built.model_cfg, state.params, sample_cfg,
                        bucket=8, batch_sharding=built.batch_sharding)
    rows, logits = sharded.generate(PROMPTS, 5, seed=2, keep_logits=True)
  assert [r.tokens for r in rows] == [r.tokens for r in ref]
  np.testing.assert_allclose(logits, ref_logits, atol=2e-5)
