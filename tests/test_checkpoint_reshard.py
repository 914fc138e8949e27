"""A checkpoint saved on one mesh restores onto another with identical values."""

import jax
import ml_collections
import numpy as np
import optax
import pytest

from lm_jax.checkpoint import Checkpointer
from tests.sharded_setup import built_for, sharded_state, tiny_model_cfg


def _ckpt_cfg():
  return ml_collections.ConfigDict(dict(every=1, keep=2, async_save=True))


@pytest.mark.parametrize('target', [dict(data=1, fsdp=8, tensor=1),
                                    dict(data=1, fsdp=1, tensor=1)],
                         ids=['1x8x1', 'single_device'])
def test_saved_on_2x2x2_restores_on_other_mesh(tmp_path, target):
  tx = optax.adamw(1e-3)
  model_cfg = tiny_model_cfg('llama')
  _, state, _, _, _ = sharded_state(model_cfg, dict(data=2, fsdp=2, tensor=2),
                                    tx=tx, seed=3)
  # Move off step 0 so step/opt_state carry information too.
  state = state.replace(step=state.step + 7)
  saver = Checkpointer(str(tmp_path), _ckpt_cfg())
  saver.save(state, None, ml_collections.ConfigDict({'model': {}}), force=True)
  saver.close()

  _, fresh, shardings, mesh, _ = sharded_state(model_cfg, target, tx=tx, seed=99)
  abstract = built_for(model_cfg, target, tx).abstract_state()
  restored = Checkpointer(str(tmp_path), _ckpt_cfg()).restore(abstract, None)

  assert int(restored.step) == 7
  for want, got, sharding in zip(jax.tree.leaves(state),
                                 jax.tree.leaves(restored),
                                 jax.tree.leaves(shardings)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert got.sharding.is_equivalent_to(sharding, got.ndim)
    assert set(got.sharding.device_set) == set(mesh.devices.flat)
  # The fresh state was really different: the restore did the work.
  assert not np.allclose(jax.tree.leaves(fresh.params)[0],
                         jax.tree.leaves(restored.params)[0])
