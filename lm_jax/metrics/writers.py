"""Scalar metrics fanned out to stdout, a JSONL file and TensorBoard.

    writer = MetricsWriter(run_dir, is_primary=jax.process_index() == 0)
    writer.write(100, {'loss': 2.3412, 'tokens_per_s': 1950.0})        # prefix='train'
    writer.write(200, {'loss': 2.1, 'perplexity': 8.2}, prefix='eval')
    writer.write_text('config', config.to_json_best_effort(indent=2))
    writer.close()

Sinks:
  * stdout: one line per `write`,
    `step 100 | train/loss 2.3412 | train/tokens_per_s 1.95e3`.
    Written with `tqdm.write`, so a progress bar on stderr is cleared and redrawn
    rather than torn in half.
  * `<run_dir>/metrics.jsonl`: one JSON object per `write`,
    `{"step": 100, "train/loss": 2.3412, "train/tokens_per_s": 1950.0, "time": 1.7e9}`
    (`time` is Unix seconds). The file is opened in append mode, so a resumed run
    keeps the lines of earlier runs; it is flushed after every line.
  * `<run_dir>/tensorboard/`: tensorboardX event files (when `tensorboard=True`).
  * Weights & Biases (when `wandb_project` is set; see wandb_sink.py): the
    same metrics, the config given as `wandb_config` and the run directory.

Values: Python numbers, NumPy scalars and 0-d / 1-element jax or NumPy arrays.
Integers (Python or NumPy/jax integer dtypes) stay ints; everything else
becomes a Python float.

Non-finite values are written, never dropped. JSON has no NaN/Infinity, so the
JSONL file holds them as the *strings* "nan", "inf" and "-inf" (which keeps
NaN and the two infinities apart, unlike null); `read_jsonl` turns those
strings back into floats. stdout shows `nan` / `inf` / `-inf`; TensorBoard
stores the float itself.

Only the primary process (process 0) writes anything: with `is_primary=False`
every method is a no-op and no file or directory is created.

Resuming: pass `purge_step=restored_step + 1` to drop what a crashed run logged
after its last checkpoint: JSONL lines with `step >= purge_step` are removed
once, at construction, and tensorboardX's `purge_step` tells TensorBoard to hide
the matching events. Left at None, earlier lines are kept as they are.
"""

import json
import math
import os
import sys
import time
from typing import Any, Mapping, TextIO

import numpy as np
import tqdm

JSONL_NAME = 'metrics.jsonl'
TENSORBOARD_DIR = 'tensorboard'

_NONFINITE_TO_STR = {math.inf: 'inf', -math.inf: '-inf'}
_STR_TO_NONFINITE = {'nan': math.nan, 'inf': math.inf, '-inf': -math.inf}

Number = int | float


def to_number(value: Any) -> Number:
  """A Python int (integer dtypes) or float (everything else) from a scalar-like value."""
  if isinstance(value, bool):
    return int(value)
  if isinstance(value, int):
    return value
  if isinstance(value, float):
    return value
  arr = np.asarray(value)  # jax.Array, NumPy scalar/array
  if arr.size != 1:
    raise ValueError(f'metric value must be a scalar, got shape {arr.shape}')
  item = arr.reshape(()).item()
  if isinstance(item, (bool, np.bool_)):
    return int(item)
  if isinstance(item, int):
    return item
  return float(item)


def format_number(value: Number) -> str:
  """Compact console formatting: 2.3412, 1.95e3, 3.00e-4, 0, nan, 12345 (ints)."""
  if isinstance(value, int):
    return str(value)
  if math.isnan(value):
    return 'nan'
  if math.isinf(value):
    return 'inf' if value > 0 else '-inf'
  if value == 0:
    return '0'
  if 1e-3 <= abs(value) < 1e3:
    return f'{value:.4f}'
  mantissa, exponent = f'{value:.2e}'.split('e')
  return f'{mantissa}e{int(exponent)}'


def _json_value(value: Number) -> Number | str:
  if isinstance(value, float) and not math.isfinite(value):
    return 'nan' if math.isnan(value) else _NONFINITE_TO_STR[value]
  return value


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
  """The records of a metrics.jsonl file, with "nan"/"inf"/"-inf" back as floats.

  A missing file gives []. A torn last line (a crash mid-write) is skipped.
  """
  if not os.path.exists(path):
    return []
  records = []
  with open(path, encoding='utf-8') as f:
    lines = f.read().splitlines()
  for i, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      if i == len(lines) - 1:
        continue  # torn final line
      raise
    records.append({k: _STR_TO_NONFINITE.get(v, v) if isinstance(v, str) else v
                    for k, v in record.items()})
  return records


def _purge_jsonl(path: str, purge_step: int) -> None:
  """Rewrites `path` without the lines whose step is >= purge_step (atomic replace)."""
  if not os.path.exists(path):
    return
  with open(path, encoding='utf-8') as f:
    lines = f.read().splitlines()
  kept = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue  # a torn line cannot be trusted either way
    step = record.get('step')
    if isinstance(step, int) and step >= purge_step:
      continue
    kept.append(line)
  if len(kept) == len(lines):
    return
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(''.join(line + '\n' for line in kept))
  os.replace(tmp, path)


class MetricsWriter:
  """Writes scalar metrics to stdout, `<run_dir>/metrics.jsonl` and TensorBoard.

  Args:
    run_dir: the run's directory (created if missing, on the primary only).
    is_primary: whether this process writes; None means `jax.process_index() == 0`.
    tensorboard: also write TensorBoard event files under `<run_dir>/tensorboard`.
    console: print one line per `write` (to `stream`, default sys.stdout).
    jsonl: append to `<run_dir>/metrics.jsonl`.
    purge_step: on resume, drop JSONL lines and TensorBoard events with
      step >= purge_step (see the module docstring).
    stream: the console stream; None means sys.stdout at the time of each write.
    flush_secs: how often tensorboardX flushes event files on its own.
    wandb_project: also log to this Weights & Biases project ('': no W&B).
    wandb_mode: online | offline | disabled (wandb.init's mode).
    wandb_config: the resolved config recorded in the W&B run.
  """

  def __init__(self, run_dir: str | os.PathLike, *, is_primary: bool | None = None,
               tensorboard: bool = True, console: bool = True, jsonl: bool = True,
               purge_step: int | None = None, stream: TextIO | None = None,
               flush_secs: int = 30, wandb_project: str = '', wandb_mode: str = 'online',
               wandb_config: Mapping[str, Any] | None = None):
    if is_primary is None:
      import jax  # pylint: disable=g-import-not-at-top
      is_primary = jax.process_index() == 0
    self.run_dir = os.fspath(run_dir)
    self.is_primary = bool(is_primary)
    self.jsonl_path = os.path.join(self.run_dir, JSONL_NAME)
    self.tensorboard_dir = os.path.join(self.run_dir, TENSORBOARD_DIR)
    self._console = console
    self._stream = stream
    self._jsonl_file = None
    self._tb = None
    self._wandb = None
    self._closed = False
    if not self.is_primary:
      return
    os.makedirs(self.run_dir, exist_ok=True)
    if jsonl:
      if purge_step is not None:
        _purge_jsonl(self.jsonl_path, purge_step)
      self._jsonl_file = open(self.jsonl_path, 'a', encoding='utf-8')
    if tensorboard:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._tb = tensorboardX.SummaryWriter(
          logdir=self.tensorboard_dir, purge_step=purge_step, flush_secs=flush_secs)
    if wandb_project:
      from lm_jax.metrics.wandb_sink import WandbSink  # pylint: disable=g-import-not-at-top
      self._wandb = WandbSink(self.run_dir, wandb_project, wandb_mode, wandb_config)

  def write(self, step: int, metrics: Mapping[str, Any], prefix: str = 'train') -> None:
    """Writes `metrics` at `step`; keys become `prefix/name` ('' or None: no prefix)."""
    if not self.is_primary or self._closed:
      return
    step = int(step)
    values = _fetch(metrics)
    named = {(f'{prefix}/{k}' if prefix else k): to_number(v) for k, v in values.items()}

    if self._console:
      parts = [f'step {step}'] + [f'{k} {format_number(v)}' for k, v in named.items()]
      tqdm.tqdm.write(' | '.join(parts), file=self._stream or sys.stdout)
      (self._stream or sys.stdout).flush()

    if self._jsonl_file is not None:
      record = {'step': step}
      record.update({k: _json_value(v) for k, v in named.items()})
      record['time'] = time.time()
      self._jsonl_file.write(json.dumps(record, allow_nan=False) + '\n')
      self._jsonl_file.flush()

    if self._tb is not None:
      for k, v in named.items():
        self._tb.add_scalar(k, v, global_step=step)

    if self._wandb is not None:
      self._wandb.log(step, named)

  def write_text(self, name: str, text: str, step: int = 0) -> None:
    """Writes `text` to `<run_dir>/<name>.txt` and, as a TensorBoard text summary, `name`.

    TensorBoard renders text as Markdown, so it is sent indented by four
    spaces (a code block) to keep a config's line breaks and spacing.
    """
    if not self.is_primary or self._closed:
      return
    filename = name.replace('/', '_').replace(os.sep, '_') + '.txt'
    with open(os.path.join(self.run_dir, filename), 'w', encoding='utf-8') as f:
      f.write(text if text.endswith('\n') else text + '\n')
    if self._tb is not None:
      code_block = '\n'.join('    ' + line for line in text.splitlines())
      self._tb.add_text(name, code_block, global_step=int(step))

  def flush(self) -> None:
    if not self.is_primary or self._closed:
      return
    if self._jsonl_file is not None:
      self._jsonl_file.flush()
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    """Flushes and closes the files; later calls (and writes) do nothing."""
    if self._closed:
      return
    self._closed = True
    if self._jsonl_file is not None:
      self._jsonl_file.close()
      self._jsonl_file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._wandb is not None:
      self._wandb.close()
      self._wandb = None

  def __enter__(self) -> 'MetricsWriter':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _fetch(metrics: Mapping[str, Any]) -> dict[str, Any]:
  """Brings jax arrays to the host in one batched transfer; other values pass through."""
  if any(type(v).__module__.startswith(('jax', 'jaxlib')) for v in metrics.values()):
    import jax  # pylint: disable=g-import-not-at-top
    return jax.device_get(dict(metrics))
  return dict(metrics)
