"""Orbax save/restore of the train iterator's position, via grain's handler.

The iterator's state is {"next_index": <next global batch>}; grain writes it
as process_<i>-of-<n>.json inside the checkpoint item. Use one item of an
`ocp.args.Composite` next to the train state:

  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data_iter=iterator_save_args(data.train_iter)))

  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      data_iter=iterator_restore_args(data.train_iter)))
  # data.train_iter now yields the batch that followed step's save.

The iterator state is read when `save` is called (grain's handler is a
blocking item even under async checkpointing), so advancing the iterator
right after `save` returns is safe.
"""

import grain

DATA_ITEM = 'data_iter'  # suggested Composite item name


def iterator_save_args(train_iter: grain.DatasetIterator):
  """Returns the Orbax args that save `train_iter`'s position."""
  return grain.checkpoint.CheckpointSave(train_iter)


def iterator_restore_args(train_iter: grain.DatasetIterator):
  """Returns the Orbax args that move `train_iter` to the saved position (in place)."""
  return grain.checkpoint.CheckpointRestore(train_iter)
