"""The Weights & Biases sink of MetricsWriter (`logging.wandb_project`, `logging.wandb_mode`).

One W&B run per run directory: its id is kept in `<run_dir>/wandb_run_id.txt`,
so a resumed training run continues the same W&B run. The W&B run records the
resolved config and the run directory (config key `run_dir`). Metrics are
logged against our step (W&B's x-axis `step`), not W&B's own counter, so the
steps a resumed run logs again after its checkpoint land where they belong.
W&B's files go to $WANDB_DIR when set, else under the run directory.
"""

import os
import secrets
from typing import Any, Mapping

from lm_jax.errors import ConfigError

ID_FILE = 'wandb_run_id.txt'
MODES = ('online', 'offline', 'disabled')


def _run_id(run_dir: str) -> str:
  """The run directory's W&B id, created (and saved) on the first start."""
  path = os.path.join(run_dir, ID_FILE)
  if os.path.exists(path):
    with open(path, encoding='utf-8') as f:
      return f.read().strip()
  run_id = secrets.token_hex(6)  # W&B ids: letters and digits
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    f.write(run_id + '\n')
  os.replace(path + '.tmp', path)
  return run_id


class WandbSink:
  """A W&B run for one run directory: log(step, metrics), close()."""

  def __init__(self, run_dir: str, project: str, mode: str,
               config: Mapping[str, Any] | None = None):
    try:
      import wandb  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ConfigError(f'config.logging.wandb_project={project!r} needs the wandb package: '
                        "pip install -e '.[wandb]' (or set logging.wandb_project='')") from None
    if mode not in MODES:
      raise ConfigError(f'config.logging.wandb_mode={mode!r}: choose one of {", ".join(MODES)}')
    run_dir = os.path.abspath(run_dir)
    self.run_id = _run_id(run_dir)
    self._run = wandb.init(
        project=project, mode=mode, id=self.run_id, resume='allow',
        name=os.path.basename(run_dir),
        dir=None if os.environ.get('WANDB_DIR') else run_dir)
    # A resumed run may change values (train.steps): the latest config wins.
    self._run.config.update({**(config or {}), 'run_dir': run_dir}, allow_val_change=True)
    self._run.define_metric('step')
    self._run.define_metric('*', step_metric='step')

  def log(self, step: int, metrics: Mapping[str, float]) -> None:
    self._run.log({**metrics, 'step': step})

  def close(self) -> None:
    self._run.finish()
