"""Orbax save/restore of the train iterator's position, as one JSON item.

The iterator's state is {"next_index": <next global batch>}: counted in global
batches, so it is the same on every process and means the same with any
process count. It is saved with Orbax's JSON handler, which writes from the
primary process only, so a checkpoint written by N processes restores in M.
Use one item of an `ocp.args.Composite` next to the train state:

  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data_iter=iterator_save_args(data.train_iter)))

  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      data_iter=iterator_restore_args()))
  set_iterator_state(data.train_iter, restored['data_iter'])
  # data.train_iter now yields the batch that followed step's save.

The state is read when `iterator_save_args` is called, so advancing the
iterator right after an (async) `save` returns is safe.

Checkpoints written before this format hold grain's per-process files
(`process_<i>-of-<n>.json`) instead; `legacy_iterator_state` reads them.
"""

import glob
import json
import os
from typing import Any

import grain
import orbax.checkpoint as ocp

DATA_ITEM = 'data_iter'  # suggested Composite item name


def iterator_save_args(train_iter: grain.DatasetIterator) -> ocp.args.JsonSave:
  """Returns the Orbax args that save `train_iter`'s current position."""
  # A JSON round trip: a copy the iterator cannot change while an async save
  # is in flight, and an early error if the state is not JSON.
  return ocp.args.JsonSave(json.loads(json.dumps(train_iter.get_state())))


def iterator_restore_args() -> ocp.args.JsonRestore:
  """Returns the Orbax args that read a saved position (give it to `set_iterator_state`)."""
  return ocp.args.JsonRestore()


def set_iterator_state(train_iter: grain.DatasetIterator, state: dict[str, Any]) -> None:
  """Moves `train_iter` (in place) to a saved position."""
  train_iter.set_state(state)
  start = getattr(train_iter, 'start_prefetch', None)
  if start is not None:  # read ahead now, as grain's own handler does
    start()


def is_legacy_item(item_dir: str) -> bool:
  """Whether `item_dir` holds grain's per-process files rather than one JSON item."""
  return (not os.path.exists(os.path.join(item_dir, 'metadata'))
          and bool(glob.glob(os.path.join(item_dir, 'process_*-of-*.json'))))


def legacy_iterator_state(item_dir: str) -> dict[str, Any]:
  """The position in a checkpoint item written by grain's handler (any process count).

  Every process's file holds the same global position; process 0's is read.
  """
  files = sorted(glob.glob(os.path.join(item_dir, 'process_0-of-*.json')))
  if not files:
    raise FileNotFoundError(f'no process_0-of-*.json in {item_dir}')
  with open(files[0], encoding='utf-8') as f:
    return json.load(f)
