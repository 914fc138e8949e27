"""Loss and gradients of one mean-gradient step of any family on a given mesh.

Shared by the per-family equivalence tests: the expected value is the same
computation on one device (tests/sharded_setup.py builds both with lm_jax.build).
"""

import functools

import flax.linen as nn
import jax
import numpy as np

from lm_jax.parallel.mesh import replicated
from lm_jax.train.step import mean_grads
from tests.sharded_setup import objective, place_batch, random_batch, sharded_state


def loss_and_grads(model_cfg, mesh_shape: dict, batch=None):
  """(loss, NumPy grads, grads as jax.Arrays) of `model_cfg` on `mesh_shape`."""
  _, state, shardings, mesh, rules = sharded_state(model_cfg, mesh_shape)
  batch = place_batch(random_batch() if batch is None else batch, mesh, rules)
  fn = jax.jit(functools.partial(mean_grads, objective=objective(), num_micro=1),
               in_shardings=(shardings, None),
               out_shardings=(shardings.params, replicated(mesh), replicated(mesh)))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    grads, metrics, _ = fn(state, batch)
  return float(metrics['loss']), jax.tree.map(np.asarray, grads), grads


def assert_matches_single_device(model_cfg, mesh_shape: dict, batch=None):
  """Loss within 1e-5 relative and every gradient within 2e-4 of one device's."""
  single = dict(data=1, fsdp=1, tensor=1)
  ref_loss, ref_grads, _ = loss_and_grads(model_cfg, single, batch)
  loss, grads, sharded = loss_and_grads(model_cfg, mesh_shape, batch)
  assert abs(loss - ref_loss) < 1e-5 * abs(ref_loss), (loss, ref_loss)
  flat_ref = jax.tree_util.tree_leaves_with_path(ref_grads)
  for (path, g_ref), g in zip(flat_ref, jax.tree.leaves(grads)):
    np.testing.assert_allclose(g, g_ref, rtol=2e-4, atol=1e-6,
                               err_msg=jax.tree_util.keystr(path))
  return sharded
