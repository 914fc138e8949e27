"""A training progress bar on stderr: step/total, loss, tokens/s and ETA.

    bar = ProgressBar(total_steps=config.train.steps, initial_step=restored_step,
                      enabled=config.logging.progress and jax.process_index() == 0)
    for step in range(restored_step + 1, total + 1):
      ...
      bar.update(step, loss=loss, tokens_per_s=tps)
    bar.close()

Built on tqdm. `initial_step` starts a resumed run's bar where the checkpoint
left off; tqdm then measures the rate (and so the ETA) only over the steps
taken in this run. Redraws are rate-limited by `mininterval`: 1 s on a
terminal, 60 s when stderr is not a TTY (a log file under SLURM or
`gcloud ... ssh`), so a long run adds a line a minute, not one per step.
Console metric lines written by `MetricsWriter` go through `tqdm.write`, which
clears the bar first, so the two do not tear each other.
"""

import sys
from typing import Any, TextIO

import tqdm


class ProgressBar:
  """A tqdm bar over training steps; every method is a no-op when disabled.

  Args:
    total_steps: the step the run ends at.
    initial_step: the step the bar starts at (the restored step on resume).
    enabled: False makes the bar a no-op (non-primary processes, or
      `config.logging.progress=False`).
    stream: where the bar goes; default sys.stderr.
    mininterval: seconds between redraws; None: 1 on a TTY, 60 otherwise.
    desc: the text in front of the bar.
  """

  def __init__(self, total_steps: int, *, initial_step: int = 0, enabled: bool = True,
               stream: TextIO | None = None, mininterval: float | None = None,
               desc: str = 'train'):
    self.enabled = bool(enabled)
    self._bar = None
    if not self.enabled:
      return
    stream = stream if stream is not None else sys.stderr
    is_tty = bool(getattr(stream, 'isatty', lambda: False)())
    if mininterval is None:
      mininterval = 1.0 if is_tty else 60.0
    self._bar = tqdm.tqdm(
        total=int(total_steps),
        initial=int(initial_step),
        file=stream,
        desc=desc,
        unit='step',
        mininterval=mininterval,
        maxinterval=max(mininterval, 10.0),  # tqdm's monitor must not undercut mininterval
        dynamic_ncols=is_tty,
        ascii=not is_tty,
        leave=True,
        smoothing=0.1,  # the first step includes compilation; forget it quickly
    )

  @property
  def step(self) -> int:
    return self._bar.n if self._bar is not None else 0

  def update(self, step: int, loss: Any = None, tokens_per_s: Any = None) -> None:
    """Moves the bar to `step` (absolute, not an increment) and shows loss and tokens/s."""
    if self._bar is None:
      return
    postfix = []
    if loss is not None:
      postfix.append(f'loss {float(loss):.4f}')
    if tokens_per_s is not None:
      postfix.append(f'{_si(float(tokens_per_s))} tok/s')
    if postfix:
      self._bar.set_postfix_str(', '.join(postfix), refresh=False)
    delta = int(step) - self._bar.n
    if delta > 0:
      self._bar.update(delta)  # redraws at most every mininterval

  def write(self, text: str) -> None:
    """Prints a line above the bar without tearing it."""
    if self._bar is None:
      return
    self._bar.write(text, file=self._bar.fp)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None

  def __enter__(self) -> 'ProgressBar':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _si(value: float) -> str:
  """1950 -> '1.95k', 2.4e6 -> '2.40M'."""
  if value != value:  # nan
    return 'nan'
  for threshold, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
    if abs(value) >= threshold:
      return f'{value / threshold:.2f}{suffix}'
  return f'{value:.1f}'
