"""Orbax checkpoints of a run: train state, data iterator position, config, data fingerprint.

Layout: <run_dir>/checkpoints/<step>/{state, data_iter, config, data_fingerprint, loop}. In a
multi-process run every process calls save and restore with the same
directory: each writes its own shards of the state, process 0 alone writes the
JSON items (data_iter: the global batch position; config), so a checkpoint
written by N processes restores in any number. Orbax writes
each step into a temporary directory and renames it when complete, so a crash
mid-save leaves the previous step as the latest good checkpoint. Restoring
takes abstract arrays carrying the *current* mesh's shardings, so a run saved
on one mesh resumes on another.

Before resuming, `check_resumable` refuses another model and
`check_data_resumable` refuses other data (lm_jax/data/fingerprint.py: what the
saved iterator position and the trained-on text depend on).

Which steps stay: the last `checkpoint.keep`, plus the step given to
`set_best_step` (the loop's best evaluation), which garbage collection never
deletes. The `loop` item holds the loop's own state (best evaluation, early
stopping), so a resumed run finds the best step again.
"""

import dataclasses
import logging
import os
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

from lm_jax.config.loader import ConfigError
from lm_jax.data import checkpointing as data_ckpt
from lm_jax.data import fingerprint
from lm_jax.models.registry import get_family

# Data keys that fix the vocabulary (the embedding's shape). data.source is
# not among them: a resumed run keeps its saved tokenizer, and the corpus
# content is check_data_resumable's to compare.
_SHAPE_DATA_KEYS = ('data.tokenizer', 'data.bpe_vocab_size')
FINGERPRINT_ITEM = 'data_fingerprint'
ALLOW_NEW_DATA = '--config.checkpoint.allow_new_data=True'


def has_checkpoint(run_dir: str) -> bool:
  """Whether <run_dir>/checkpoints holds a finished step (Orbax names those by the step alone)."""
  directory = os.path.join(run_dir, 'checkpoints')
  return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))
LOOP_ITEM = 'loop'


@dataclasses.dataclass
class _KeepStep:
  """Orbax preservation policy: keeps the one step it is set to (None: none)."""
  step: int | None = None

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    del context
    return [info.step == self.step for info in checkpoints]


class Checkpointer:
  """Saves and restores one run's checkpoints (all processes call every method)."""

  def __init__(self, run_dir: str, ckpt_cfg: ml_collections.ConfigDict,
               data_fingerprint: dict | None = None, read_only: bool = False):
    """`read_only`: another run's checkpoints (a teacher's), never written or pruned."""
    self.directory = os.path.join(os.path.abspath(run_dir), 'checkpoints')
    self.data_fingerprint = data_fingerprint  # saved with every checkpoint, if given
    self._best = _KeepStep()
    keep = ocp.checkpoint_managers.AnyPreservationPolicy(
        [ocp.checkpoint_managers.LatestN(n=ckpt_cfg.keep), self._best])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=keep, create=not read_only, read_only=read_only,
        enable_async_checkpointing=ckpt_cfg.async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def save(self, state, train_iter: grain.DatasetIterator | None,
           config: ml_collections.ConfigDict, force: bool = False,
           loop_state: dict[str, Any] | None = None) -> bool:
    """Starts an (async) save of `state` at its step; returns whether it saved."""
    items = {'state': ocp.args.StandardSave(state.to_tree()),
             'config': ocp.args.JsonSave(config.to_dict())}
    if loop_state is not None:
      items[LOOP_ITEM] = ocp.args.JsonSave(loop_state)
    if train_iter is not None:
      items['data_iter'] = data_ckpt.iterator_save_args(train_iter)
    if self.data_fingerprint is not None:
      items[FINGERPRINT_ITEM] = ocp.args.JsonSave(self.data_fingerprint)
    return self.manager.save(int(jax.device_get(state.step)),
                             args=ocp.args.Composite(**items), force=force)

  def restore(self, abstract_state, train_iter: grain.DatasetIterator | None,
              step: int | None = None):
    """Restores `step` (default: latest) onto the shardings in `abstract_state`;
    moves `train_iter` (in place) to the batch after that step."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise ConfigError(f'no checkpoint in {self.directory}')
    items = {'state': ocp.args.StandardRestore(abstract_state.to_tree())}
    iter_dir = os.path.join(self.directory, str(step), 'data_iter')
    legacy = train_iter is not None and data_ckpt.is_legacy_item(iter_dir)
    if train_iter is not None and not legacy:
      items['data_iter'] = data_ckpt.iterator_restore_args()
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    if train_iter is not None:
      data_ckpt.set_iterator_state(
          train_iter, data_ckpt.legacy_iterator_state(iter_dir) if legacy
          else restored['data_iter'])
    return abstract_state.from_tree(restored['state'])

  def restore_params(self, abstract_params, step: int):
    """Only the params of `step`'s state, onto the shardings in `abstract_params`."""
    path = os.path.join(self.directory, str(step), 'state')
    restore_args = jax.tree.map(lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding),
                                abstract_params)
    restored = ocp.PyTreeCheckpointer().restore(path, args=ocp.args.PyTreeRestore(
        {'params': abstract_params}, restore_args={'params': restore_args},
        partial_restore=True))
    return restored['params']

  def saved_config(self, step: int | None = None) -> dict[str, Any]:
    step = self.latest_step() if step is None else step
    restored = self.manager.restore(
        step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    return restored['config']

  def saved_data_fingerprint(self, step: int | None = None) -> dict[str, Any] | None:
    """The data fingerprint saved with `step` (default: latest); None if it has none (old)."""
    step = self.latest_step() if step is None else step
    if not os.path.isdir(os.path.join(self.directory, str(step), FINGERPRINT_ITEM)):
      return None
    restored = self.manager.restore(
        step, args=ocp.args.Composite(**{FINGERPRINT_ITEM: ocp.args.JsonRestore()}))
    return restored[FINGERPRINT_ITEM]

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


def _lookup(tree: dict, dotted: str, default=None):
  for part in dotted.split('.'):
    if not isinstance(tree, dict) or part not in tree:
      return default
    tree = tree[part]
  return tree


def check_resumable(saved: dict[str, Any], config: ml_collections.ConfigDict):
  """Refuses to resume when the saved run's parameter shapes differ from the config's.

  Which keys shape the parameters is the family's to say (its registry entry's
  `shape_keys`); the family itself and the vocabulary's data keys always count.
  """
  current = config.to_dict()
  saved_family = _lookup(saved, 'model.family', 'decoder')
  keys = ('model.family',) + get_family(config.model.family).shape_keys + _SHAPE_DATA_KEYS
  if saved_family != config.model.family:
    keys = ('model.family',)
  # Keys older checkpoints did not have read as today's defaults.
  defaults = {'mesh.stage': 1}
  diffs = [f'{k}: saved {_lookup(saved, k, defaults.get(k))!r}, now {_lookup(current, k)!r}'
           for k in keys if _lookup(saved, k, defaults.get(k)) != _lookup(current, k)]
  if diffs:
    raise ConfigError(
        'the run directory holds a checkpoint of a different model; resuming '
        'would not load. Differences:\n  ' + '\n  '.join(diffs) +
        '\nUse another --config.logging.run_dir, or the saved values.')


def check_data_resumable(saved_fp: dict[str, Any] | None, saved_config: dict[str, Any],
                         current_fp: dict[str, Any], config: ml_collections.ConfigDict) -> bool:
  """Refuses (ConfigError) to resume on data unlike the checkpoint's, unless allowed.

  Returns whether the saved data position applies (False: the data changed and
  checkpoint.allow_new_data is set, so the iterator starts at batch 0).
  """
  if saved_fp is None:
    # Written before fingerprints: the saved config shows the source, split,
    # seq_len, batch, seed and max_bytes; the corpus content cannot be checked.
    logging.warning('the checkpoint has no data fingerprint (older lm_jax): comparing the '
                    'data config only; a changed corpus content goes unnoticed')
    diffs = fingerprint.config_differences(saved_config, config.to_dict())
  else:
    diffs = _fingerprint_differences(saved_fp, current_fp)
  if not diffs:
    return True
  listed = '\n  '.join(diffs)
  if config.checkpoint.allow_new_data:
    logging.warning('checkpoint.allow_new_data: the data differs from the checkpoint\'s; '
                    'continuing with its params, optimizer state and step, the data '
                    'iterator from batch 0. Differences:\n  %s', listed)
    return False
  raise ConfigError(
      'the run directory holds a checkpoint trained on other data; resuming would read '
      'other windows at the saved data position, and validation or test text may have '
      f'been trained on. Differences:\n  {listed}\nUse the saved values or another '
      f'--config.logging.run_dir; or pass {ALLOW_NEW_DATA} to continue the saved params '
      'and optimizer state on the new data (its iterator starts at batch 0).')


def _fingerprint_differences(saved_fp: dict[str, Any], current_fp: dict[str, Any]) -> list[str]:
  """fingerprint.differences, refusing outright a tokenizer unlike the checkpoint's."""
  if saved_fp.get('tokenizer') != current_fp['tokenizer']:
    raise ConfigError(  # its ids would mean other text to the saved params; no switch helps
        f'the run\'s tokenizer ({current_fp["tokenizer"]}) is not the one the checkpoint was '
        f'trained with ({saved_fp.get("tokenizer")}); restore <run_dir>/tokenizer or use '
        'another --config.logging.run_dir')
  return fingerprint.differences(saved_fp, current_fp)
