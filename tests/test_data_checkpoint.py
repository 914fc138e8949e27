"""Orbax CheckpointManager + the iterator's JSON item resume the train iterator at the next batch."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data import checkpointing
from lm_jax.data import pipeline


def _data(tmp_path, prefetch):
  rng = np.random.default_rng(0)
  (tmp_path / 'c.txt').write_text(''.join(rng.choice(list('abcdefgh \n'), size=20_000)))
  cfg = base_config().data
  cfg.update(source=str(tmp_path / 'c.txt'), tokenizer='byte', seq_len=16, prefetch=prefetch)
  return pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'run'))


@pytest.mark.parametrize('async_save', [True, False])
def test_orbax_save_restore_resumes_at_next_batch(tmp_path, async_save):
  data = _data(tmp_path, prefetch=2)
  state = {'w': jnp.arange(4.0), 'step': jnp.array(3)}
  for _ in range(3):
    next(data.train_iter)

  options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=async_save)
  with ocp.CheckpointManager(str(tmp_path / 'ckpt'), options=options) as mngr:
    mngr.save(3, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data_iter=checkpointing.iterator_save_args(data.train_iter)))
    # The loop keeps training while an async save is in flight: the saved
    # position must be the one at save() time.
    expected = [next(data.train_iter) for _ in range(3)]
    mngr.wait_until_finished()

  # A new process: fresh data (same config), restore into its iterator.
  resumed = _data(tmp_path, prefetch=2)
  with ocp.CheckpointManager(str(tmp_path / 'ckpt'), options=options) as mngr:
    step = mngr.latest_step()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    restored = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        data_iter=checkpointing.iterator_restore_args()))
  checkpointing.set_iterator_state(resumed.train_iter, restored['data_iter'])
  assert step == 3
  # One JSON file written by the primary process, not one file per process.
  files = os.listdir(tmp_path / 'ckpt' / '3' / checkpointing.DATA_ITEM)
  assert 'metadata' in files and not any(f.startswith('process_') for f in files)
  assert restored['data_iter'] == {'next_index': 3}
  fresh_first = next(_data(tmp_path, prefetch=0).train_iter)
  assert not np.array_equal(fresh_first['inputs'], expected[0]['inputs'])  # restore mattered
  np.testing.assert_array_equal(restored['state']['w'], state['w'])
  for want in expected:
    got = next(resumed.train_iter)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_legacy_grain_item_is_read(tmp_path):
  """Checkpoints from before the JSON item hold grain's process_<i>-of-<n>.json."""
  import grain
  data = _data(tmp_path, prefetch=0)
  for _ in range(5):
    next(data.train_iter)
  with ocp.CheckpointManager(str(tmp_path / 'ckpt')) as mngr:
    mngr.save(5, args=ocp.args.Composite(
        data_iter=grain.checkpoint.CheckpointSave(data.train_iter)))
  item = str(tmp_path / 'ckpt' / '5' / checkpointing.DATA_ITEM)
  assert checkpointing.is_legacy_item(item)
  resumed = _data(tmp_path, prefetch=2)
  checkpointing.set_iterator_state(resumed.train_iter,
                                   checkpointing.legacy_iterator_state(item))
  want, got = next(data.train_iter), next(resumed.train_iter)
  np.testing.assert_array_equal(got['inputs'], want['inputs'])
