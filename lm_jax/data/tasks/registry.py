"""The task registry: `get_task(name)`."""

import dataclasses
from typing import Any, Callable

import numpy as np

from lm_jax.errors import ConfigError

# key -> (shape, numpy dtype) of one global batch.
BatchSpec = dict[str, tuple[tuple[int, ...], Any]]


@dataclasses.dataclass(frozen=True)
class TaskContext:
  """What make_batch may use besides the windows."""
  data_cfg: Any                 # the config's `data` section
  specials: dict[str, int]      # role -> id (lm_jax/data/special_tokens.py)
  text_vocab_size: int          # ids [0, text_vocab_size) are text (e.g. MLM's random tokens)
  seed: int = 0                 # data.seed: per-row randomness derives from it
  # The split's windows (len(), [index]), for tasks that read other rows' text (NSP).
  windows: Any = None


@dataclasses.dataclass(frozen=True)
class Task:
  """A batch maker (see lm_jax/data/tasks/__init__.py)."""
  name: str
  description: str
  # window_len(seq_len, data_cfg) -> raw tokens per row.
  window_len: Callable[[int, Any], int]
  # batch_spec(batch_size, seq_len, data_cfg) -> {key: (shape, dtype)}.
  batch_spec: Callable[[int, int, Any], BatchSpec]
  # make_batch(windows_BxW, row_ids_B, ctx) -> batch dict of NumPy arrays.
  # row_ids_B: each row's global identity (batch index * global batch + row),
  # the same whatever the process count: per-row randomness is seeded by it.
  make_batch: Callable[[np.ndarray, np.ndarray, TaskContext], dict]
  # special_tokens(data_cfg) -> roles the batches contain (lm_jax/data/special_tokens.py).
  special_tokens: Callable[[Any], tuple[str, ...]] = lambda data_cfg: ()
  # Keys of config.data the task reads (they enter the checkpoint's data fingerprint).
  config_keys: tuple[str, ...] = ()
  # examples(data_cfg, tokenizer, specials, split) -> [N, W] int32 rows that replace the
  # token stream's windows of split 'train' | 'val' | 'test' (None: windows of the stream).
  examples: Callable[[Any, Any, dict, str], np.ndarray] | None = None


def _tasks() -> dict[str, Task]:
  from lm_jax.data.tasks.lm import TASK as lm  # pylint: disable=g-import-not-at-top
  from lm_jax.data.tasks.mlm import TASK as mlm  # pylint: disable=g-import-not-at-top
  from lm_jax.data.tasks.seq2seq import TASK as seq2seq  # pylint: disable=g-import-not-at-top
  from lm_jax.data.tasks.span_corruption import TASK as span_corruption  # pylint: disable=g-import-not-at-top
  return {t.name: t for t in (lm, mlm, span_corruption, seq2seq)}


TASK_NAMES = ('lm', 'mlm', 'span_corruption', 'seq2seq')


def get_task(name: str) -> Task:
  """The task called `name`; ConfigError listing the tasks otherwise."""
  tasks = _tasks()
  if name not in tasks:
    raise ConfigError(f'config.data.task={name!r} is not a task; choose one of '
                      f'{", ".join(map(repr, tasks))}')
  return tasks[name]
