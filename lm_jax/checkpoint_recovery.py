"""Damaged checkpoints: name the file that cannot be read, fall back, set it aside.

A step is damaged when one of its files cannot be read: a JSON file Orbax
parses (an item's `metadata`, the state's `_METADATA` and `array_metadatas/*`;
checked before restoring, so one damaged file of any item counts), an item the
restore asks for is missing, or TensorStore cannot read the state's arrays (the
OCDBT references are then checked to name the file that is cut short). Any
other error is raised as it is: it is no evidence of damage. Bit flips inside
compressed array data that still decodes are not detected (Orbax stores no
checksums of array data).

`newest_readable` tries the steps newest first. With `move` (train) a damaged
step is moved to <run_dir>/checkpoints_damaged/<step>: the resumed run can save
that step number again (Orbax never saves over a step directory) and
`checkpoint.keep` never deletes it. Without (eval) it stays where it is.
Nothing is ever deleted.
"""

import glob
import json
import logging
import os
import re
from typing import Callable, TypeVar

import jax
import tensorstore as ts

from lm_jax.checkpoint import Checkpointer
from lm_jax.errors import ConfigError

T = TypeVar('T')
DAMAGED_DIR = 'checkpoints_damaged'
_MISSING_ITEM = re.compile(r'Item "([^"]+)" was not found in the checkpoint')
_LOCAL_FILE = re.compile(r'local file "([^"]+)"')


class DamagedCheckpoint(Exception):
  """A checkpoint step with a file that cannot be read."""

  def __init__(self, step: int, path: str, reason: str):
    self.step, self.path, self.reason = step, path, reason
    super().__init__(f'checkpoint {step} is damaged: {path}: {reason}')


def _json_files(step_dir: str) -> list[str]:
  """The JSON files of a step that a restore parses, item by item."""
  files = []
  for item_dir in sorted(glob.glob(os.path.join(step_dir, '*', ''))):
    files += [os.path.join(item_dir, n) for n in ('metadata', '_METADATA')
              if os.path.isfile(os.path.join(item_dir, n))]
    files += sorted(glob.glob(os.path.join(item_dir, 'array_metadatas', '*')))
    files += sorted(glob.glob(os.path.join(item_dir, '*.json')))  # legacy data_iter
  return files


def _unparsable_json(step_dir: str) -> tuple[str, str] | None:
  for path in _json_files(step_dir):
    try:
      with open(path, 'rb') as f:
        json.loads(f.read().decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      return path, f'not valid JSON ({e})'
    except OSError as e:
      return path, f'unreadable ({e.strerror})'
  return None


def _chain(error: BaseException) -> list[BaseException]:
  """`error` and every exception it was raised from or while handling."""
  seen, todo = [], [error]
  while todo:
    e = todo.pop()
    if e is not None and all(e is not s for s in seen):
      seen.append(e)
      todo += [e.__cause__, e.__context__]
  return seen


def _file_error(step_dir: str, error: BaseException) -> tuple[str, str] | None:
  """The most specific file of `step_dir` that an error in the chain names."""
  found = []
  for e in _chain(error):
    text = str(e).split(' [tensorstore_spec')[0]
    files = [f for f in _LOCAL_FILE.findall(text) if f.startswith(step_dir)]
    filename = getattr(e, 'filename', None)
    if isinstance(filename, str) and filename.startswith(step_dir):
      files.append(filename)
    if files:
      found.append((max(files, key=len), text.splitlines()[0][:400]))
  return max(found, key=lambda f: len(f[0])) if found else None


def _ocdbt_short_file(db_dir: str) -> tuple[str, str] | None:
  """The first file an OCDBT database (an Orbax state item) references that is
  missing or shorter than the reference needs; None if every one is whole."""
  kv = ts.KvStore.open({'driver': 'file', 'path': os.path.join(db_dir, '')}).result()

  def file_of(location: str) -> str:  # '<kind>:<base>:<file>:<offset>:<length>'
    _, base, name, _, _ = location.split(':')
    return os.path.join(db_dir, base, name)

  def short(location: str):
    path, (offset, length) = file_of(location), location.split(':')[3:]
    need = int(offset) + int(length)
    if not os.path.isfile(path):
      return path, 'missing'
    if os.path.getsize(path) < need:
      return path, f'truncated: {os.path.getsize(path)} bytes, {need} needed'
    return None

  def walk(location: str):
    found = short(location)
    if found:
      return found
    try:
      entries = ts.ocdbt.dump(kv, location).result()['entries']
    except Exception as e:  # pylint: disable=broad-except  (a b-tree node that does not decode)
      return file_of(location), str(e).splitlines()[0][:300]
    for entry in entries:
      for ref in entry.values():
        if isinstance(ref, str) and ref.startswith('value:'):
          found = short(ref)
        elif isinstance(ref, str) and ref.startswith('btreenode:'):
          found = walk(ref)
        if found:
          return found
    return None

  try:
    versions = ts.ocdbt.dump(kv).result()['versions']
  except Exception as e:  # pylint: disable=broad-except
    return os.path.join(db_dir, 'manifest.ocdbt'), str(e).splitlines()[0][:300]
  root = versions[-1]['root'].get('location') if versions else None
  return walk(root) if root else None


def _short_array_file(step_dir: str) -> tuple[str, str] | None:
  """The first array file of any OCDBT item of `step_dir` that is missing or cut short."""
  if not os.path.isdir(step_dir):
    return None
  for item in sorted(os.listdir(step_dir)):
    db_dir = os.path.join(step_dir, item)
    if os.path.isfile(os.path.join(db_dir, 'manifest.ocdbt')):
      try:
        short = _ocdbt_short_file(db_dir)
      except Exception:  # pylint: disable=broad-except  (the restore then classifies it)
        short = None
      if short:
        return short
  return None


def find_damage(step_dir: str, error: BaseException) -> tuple[str, str] | None:
  """(file, reason) when `error`, raised reading `step_dir`, comes from a
  damaged file of it; None when it does not."""
  step_dir = os.path.abspath(step_dir)
  for e in _chain(error):
    missing = _MISSING_ITEM.search(str(e))
    if isinstance(e, KeyError) and missing:
      return os.path.join(step_dir, missing.group(1)), 'missing'
  damage = _unparsable_json(step_dir) or _file_error(step_dir, error)
  if damage and os.path.isfile(os.path.join(damage[0], 'manifest.ocdbt')):
    # TensorStore names the database, not the file: find the one cut short.
    try:
      short = _ocdbt_short_file(damage[0])
    except Exception:  # pylint: disable=broad-except  (then the database is named)
      short = None
    if short:
      return short[0], f'{short[1]} ({damage[1]})'
  return damage


def set_aside(ckpt: Checkpointer, step: int) -> str:
  """Moves step's directory to <run_dir>/checkpoints_damaged/<step>[.n]; returns it."""
  target_dir = os.path.join(os.path.dirname(ckpt.directory), DAMAGED_DIR)
  target, n = os.path.join(target_dir, str(step)), 0
  while os.path.exists(target):  # damaged twice at the same step: keep both
    n += 1
    target = os.path.join(target_dir, f'{step}.{n}')
  _sync(f'lm_jax judged {step}')  # no process still reads what process 0 moves
  if jax.process_index() == 0:
    try:
      os.makedirs(target_dir, exist_ok=True)
      os.rename(os.path.join(ckpt.directory, str(step)), target)
    except OSError as e:
      raise ConfigError(
          f'checkpoint {step} in {ckpt.directory} is damaged and could not be '
          f'moved to {target} ({e.strerror}); move or remove it yourself, then '
          'run again to resume from the previous checkpoint') from e
  _sync(f'lm_jax set aside {step}')
  ckpt.reload()
  return target


def _sync(name: str):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def read_step(ckpt: Checkpointer, step: int, read: Callable[[int], T]) -> T:
  """read(step), raising DamagedCheckpoint when it fails on a damaged file."""
  step_dir = os.path.join(ckpt.directory, str(step))
  # Damage found before the restore, not during it: Orbax failing mid-restore
  # leaves TensorStore reads calling into a closed event loop, which prints
  # tracebacks on stderr (a JSON file that does not parse, an array file cut short).
  damage = _unparsable_json(step_dir) or _short_array_file(step_dir)
  if damage:
    raise DamagedCheckpoint(step, *damage)
  try:
    return read(step)
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (classified below)
    damage = find_damage(step_dir, e)
    if damage is None:
      raise
    raise DamagedCheckpoint(step, *damage) from e


def newest_readable(ckpt: Checkpointer, read: Callable[[int], T], *,
                    move: bool) -> tuple[int, T] | None:
  """(step, read(step)) for the newest step that reads; None if there is no
  step. Each damaged newer step is reported on stderr and, with `move`, set
  aside; when every step is damaged, raises ConfigError saying what to do."""
  damaged = []
  for step in sorted(ckpt.all_steps(), reverse=True):
    try:
      return step, read_step(ckpt, step, read)
    except DamagedCheckpoint as e:
      report = str(e)
      if move:
        report += f'. Moved it to {set_aside(ckpt, step)}'
      logging.warning('%s; trying the checkpoint before it', report)
      damaged.append(report)
  if not damaged:
    return None
  raise ConfigError(
      f'no readable checkpoint in {ckpt.directory}:\n  ' + '\n  '.join(damaged) +
      ('\nRun the same command again to start from step 0, or restore the '
       f'damaged steps from {DAMAGED_DIR}/ by hand.' if move else
       '\nThere is nothing to evaluate; repair or retrain the run.'))
