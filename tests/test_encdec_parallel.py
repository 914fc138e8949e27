"""Sharding does not change the T5 family's math: on a 2x2x2 data x fsdp x tensor mesh
the loss and gradients equal the single-device run (fp32)."""

import functools

import flax.linen as nn
import jax
import numpy as np
import optax

from lm_jax.build import build
from lm_jax.config.defaults import base_config
from lm_jax.parallel.mesh import replicated
from lm_jax.train.step import mean_grads

VOCAB, S, T, B = 61, 12, 6, 8


def _config(mesh_shape):
  c = base_config()
  c.model.update(family='encdec', num_layers=2, d_model=32, num_heads=4, head_dim=8,
                 mlp_dim=64, max_len=16, init_std=0.2, tie_embeddings=False)
  c.model.encdec.update(num_decoder_layers=2, feed_forward='gated-gelu')
  c.data.update(task='seq2seq', seq_len=S, target_len=T)
  c.mesh.update({'data': 1, **mesh_shape})
  c.train.update(global_batch_size=B, eval_every=0)
  return c


def _batch():
  rng = np.random.default_rng(0)
  valid = np.ones((B, S), np.int32)
  valid[1, -5:] = 0
  weights = np.ones((B, T), np.float32)
  weights[2, -2:] = 0
  return {'encoder_inputs': rng.integers(0, VOCAB, (B, S)).astype(np.int32),
          'encoder_valid': valid,
          'decoder_inputs': rng.integers(0, VOCAB, (B, T)).astype(np.int32),
          'targets': rng.integers(0, VOCAB, (B, T)).astype(np.int32), 'weights': weights}


def _loss_and_grads(mesh_shape):
  size = int(np.prod(list(mesh_shape.values())))
  built = build(_config(mesh_shape), VOCAB, jax.devices()[:size])
  state = built.init_state(0)
  batch = {k: jax.device_put(v, built.batch_sharding) for k, v in _batch().items()}
  fn = jax.jit(functools.partial(mean_grads, objective=built.objective, num_micro=1),
               in_shardings=(built.state_shardings, None),
               out_shardings=(built.state_shardings.params, replicated(built.mesh),
                              replicated(built.mesh)))
  with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    grads, metrics, _ = fn(state, batch)
  return float(metrics['loss']), jax.tree.map(np.asarray, grads), state


def test_2x2x2_mesh_matches_single_device():
  ref_loss, ref_grads, _ = _loss_and_grads(dict(data=1, fsdp=1, tensor=1))
  loss, grads, state = _loss_and_grads(dict(data=2, fsdp=2, tensor=2))
  # The mesh really splits: a query kernel is cut over fsdp (embed) and tensor (heads).
  kernel = state.params['encoder']['layer_0']['attn']['query']['kernel']
  assert kernel.addressable_shards[0].data.shape == (16, 2, 8)
  assert abs(loss - ref_loss) < 1e-5 * abs(ref_loss)
  for (path, g_ref), g in zip(jax.tree_util.tree_leaves_with_path(ref_grads),
                              jax.tree.leaves(grads)):
    # atol: the embedding's gradient adds the same rows' contributions in another order.
    np.testing.assert_allclose(g, g_ref, rtol=2e-4, atol=1e-5,
                               err_msg=jax.tree_util.keystr(path))
