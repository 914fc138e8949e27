"""Sharding the encoder does not change the math: MLM + NSP loss and gradients on a 2x2x2
(data, fsdp, tensor) mesh and with microbatches equal the single-device run (fp32)."""

import functools

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from lm_jax.build import build
from lm_jax.data.tasks import TaskContext, get_task
from lm_jax.parallel.mesh import replicated
from lm_jax.train.step import mean_grads
from tests.sharded_setup import place_batch, tiny_config, tiny_model_cfg

TEXT_V, VOCAB, SEQ, BATCH = 55, 61, 16, 8
SPECIALS = {'pad': 56, 'cls': 58, 'sep': 59, 'mask': 60}  # text vocabulary + role index


def _config(mesh_shape, microbatches=1):
  m = tiny_model_cfg('gpt')
  m.family = 'encoder'
  m.encoder.nsp_head = True
  c = tiny_config(m, mesh_shape, BATCH, SEQ)
  c.objective.name = 'mlm'
  c.data.nsp = True
  c.train.microbatches = microbatches
  return c


def _batch(config):
  rng = np.random.default_rng(0)
  pool = rng.integers(0, TEXT_V, (32, SEQ - 3), dtype=np.int32)
  ctx = TaskContext(data_cfg=config.data, specials=SPECIALS, text_vocab_size=TEXT_V, seed=3,
                    windows=pool)
  batch = get_task('mlm').make_batch(pool[:BATCH], np.arange(BATCH), ctx)
  batch['padding_mask'] = np.ones((BATCH, SEQ), bool)
  batch['padding_mask'][0, -3:] = False  # the padding path of the mask, sharded
  return batch


def _loss_and_grads(mesh_shape, microbatches=1):
  config = _config(mesh_shape, microbatches)
  size = int(np.prod(list(mesh_shape.values())))
  built = build(config, VOCAB, jax.devices()[:size])
  state = built.init_state(0)
  batch = place_batch(_batch(config), built.mesh, built.rules)
  fn = jax.jit(functools.partial(mean_grads, objective=built.objective, num_micro=microbatches),
               in_shardings=(built.state_shardings, None),
               out_shardings=(built.state_shardings.params, replicated(built.mesh),
                              replicated(built.mesh)))
  with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    grads, metrics, _ = fn(state, batch)
  return jax.tree.map(float, metrics), jax.tree.map(np.asarray, grads)


@functools.cache
def _reference():
  return _loss_and_grads(dict(data=1, fsdp=1, tensor=1))


@pytest.mark.parametrize('mesh_shape, microbatches', [
    (dict(data=2, fsdp=2, tensor=2), 1), (dict(data=2, fsdp=1, tensor=1), 2)],
    ids=['d2_f2_t2', 'd2_micro2'])
def test_loss_and_grads_match_single_device(mesh_shape, microbatches):
  ref_metrics, ref_grads = _reference()
  metrics, grads = _loss_and_grads(mesh_shape, microbatches)
  for key in ('loss', 'nsp_loss'):
    assert abs(metrics[key] - ref_metrics[key]) < 1e-5 * abs(ref_metrics[key]), key
  flat_ref = jax.tree_util.tree_leaves_with_path(ref_grads)
  assert len(flat_ref) == len(jax.tree.leaves(grads))
  for (path, g_ref), g in zip(flat_ref, jax.tree.leaves(grads)):
    np.testing.assert_allclose(g, g_ref, rtol=2e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))
