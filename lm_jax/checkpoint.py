"""Orbax checkpoints of a run: train state, data iterator position and config.

Layout: <run_dir>/checkpoints/<step>/{state, data_iter, config, loop}. In a
multi-process run every process calls save and restore with the same
directory: each writes its own shards of the state, process 0 alone writes the
JSON items (data_iter: the global batch position; config), so a checkpoint
written by N processes restores in any number. Orbax writes
each step into a temporary directory and renames it when complete, so a crash
mid-save leaves the previous step as the latest good checkpoint. Restoring
takes abstract arrays carrying the *current* mesh's shardings, so a run saved
on one mesh resumes on another.

Which steps stay: the last `checkpoint.keep`, plus the step given to
`set_best_step` (the loop's best evaluation), which garbage collection never
deletes. The `loop` item holds the loop's own state (best evaluation, early
stopping), so a resumed run finds the best step again.
"""

import dataclasses
import os
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

from lm_jax.config.loader import ConfigError
from lm_jax.data import checkpointing as data_ckpt
from lm_jax.train.state import TrainState

# Keys whose change makes a checkpoint unreadable (param shapes or tree differ).
# Every model key counts except these, which change how the model runs only.
_RUNTIME_MODEL_KEYS = ('dropout', 'attention', 'remat', 'dtype')
_SHAPE_DATA_KEYS = ('tokenizer', 'bpe_vocab_size', 'source')
_SHAPE_MESH_KEYS = ('stage',)  # pipelined params are stacked [stage, ...]
LOOP_ITEM = 'loop'


def _state_tree(state: TrainState) -> dict:
  """The arrays of a TrainState as a plain dict (apply_fn and tx are code)."""
  return {'step': state.step, 'params': state.params,
          'opt_state': state.opt_state, 'rng': state.rng}


@dataclasses.dataclass
class _KeepStep:
  """Orbax preservation policy: keeps the one step it is set to (None: none)."""
  step: int | None = None

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    del context
    return [info.step == self.step for info in checkpoints]


class Checkpointer:
  """Saves and restores one run's checkpoints (all processes call every method)."""

  def __init__(self, run_dir: str, ckpt_cfg: ml_collections.ConfigDict):
    self.directory = os.path.join(os.path.abspath(run_dir), 'checkpoints')
    self._best = _KeepStep()
    keep = ocp.checkpoint_managers.AnyPreservationPolicy(
        [ocp.checkpoint_managers.LatestN(n=ckpt_cfg.keep), self._best])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=keep, create=True,
        enable_async_checkpointing=ckpt_cfg.async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, state: TrainState, train_iter: grain.DatasetIterator | None,
           config: ml_collections.ConfigDict, force: bool = False,
           loop_state: dict[str, Any] | None = None) -> bool:
    """Starts an (async) save of `state` at its step; returns whether it saved."""
    items = {'state': ocp.args.StandardSave(_state_tree(state)),
             'config': ocp.args.JsonSave(config.to_dict())}
    if loop_state is not None:
      items[LOOP_ITEM] = ocp.args.JsonSave(loop_state)
    if train_iter is not None:
      items['data_iter'] = data_ckpt.iterator_save_args(train_iter)
    return self.manager.save(int(jax.device_get(state.step)),
                             args=ocp.args.Composite(**items), force=force)

  def restore(self, abstract_state: TrainState,
              train_iter: grain.DatasetIterator | None,
              step: int | None = None) -> TrainState:
    """Restores `step` (default: latest) onto the shardings in `abstract_state`;
    moves `train_iter` (in place) to the batch after that step."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise ConfigError(f'no checkpoint in {self.directory}')
    items = {'state': ocp.args.StandardRestore(_state_tree(abstract_state))}
    iter_dir = os.path.join(self.directory, str(step), 'data_iter')
    legacy = train_iter is not None and data_ckpt.is_legacy_item(iter_dir)
    if train_iter is not None and not legacy:
      items['data_iter'] = data_ckpt.iterator_restore_args()
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    if train_iter is not None:
      data_ckpt.set_iterator_state(
          train_iter, data_ckpt.legacy_iterator_state(iter_dir) if legacy
          else restored['data_iter'])
    tree = restored['state']
    return abstract_state.replace(step=tree['step'], params=tree['params'],
                                  opt_state=tree['opt_state'], rng=tree['rng'])

  def saved_config(self, step: int | None = None) -> dict[str, Any]:
    step = self.latest_step() if step is None else step
    restored = self.manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return restored['config']

  def saved_loop_state(self, step: int) -> dict[str, Any] | None:
    """The loop's state saved with `step`; None for checkpoints without one."""
    if not os.path.isdir(os.path.join(self.directory, str(step), LOOP_ITEM)):
      return None
    restored = self.manager.restore(
        step, args=ocp.args.Composite(**{LOOP_ITEM: ocp.args.JsonRestore()}))
    return restored[LOOP_ITEM]

  def set_best_step(self, step: int | None):
    """Marks `step` as the best checkpoint: kept beside the last `keep`."""
    self._best.step = step

  def reload(self):
    """Re-reads the step list (after a step directory was moved away)."""
    self.manager.reload()

  def wait(self):
    """Blocks until pending async saves are on disk."""
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def check_resumable(saved: dict[str, Any], config: ml_collections.ConfigDict):
  """Refuses to resume when the saved run's shapes differ from the config's."""
  current = config.to_dict()
  diffs = [f'model.{k}: saved {v!r}, now {current["model"].get(k)!r}'
           for k, v in saved['model'].items()
           if k not in _RUNTIME_MODEL_KEYS and current['model'].get(k) != v]
  for section, keys in (('data', _SHAPE_DATA_KEYS), ('mesh', _SHAPE_MESH_KEYS)):
    diffs += [f'{section}.{k}: saved {saved[section].get(k, 1)!r}, '
              f'now {current[section][k]!r}'
              for k in keys if saved[section].get(k, 1) != current[section][k]]
  if diffs:
    raise ConfigError(
        'the run directory holds a checkpoint of a different model; resuming '
        'would not load. Differences:\n  ' + '\n  '.join(diffs) +
        '\nUse another --config.logging.run_dir, or the saved values.')
