"""A jax.profiler trace of chosen training steps (`logging.profile_steps`).

    profiler = StepProfiler((3, 5), '<run_dir>/tensorboard')
    for step in range(start, steps):          # 0-based loop index
      profiler.before_step(step + 1)          # steps are numbered as metrics.jsonl does
      state, metrics = step_fn(state, batch)
      profiler.after_step(step + 1, metrics)
    profiler.close()

The trace lands in `<log_dir>/plugins/profile/<timestamp>/`: `<host>.xplane.pb`
(TensorBoard's profile plugin) and `perfetto_trace.json.gz` (ui.perfetto.dev).
Only the primary process traces. A resumed run past the first step of the
window traces what is left of it.
"""

import logging
from typing import Any, Sequence

import jax


class StepProfiler:
  """Traces steps start..stop (inclusive, 1-based) of the loop into `log_dir`."""

  def __init__(self, steps: Sequence[int], log_dir: str, enabled: bool = True):
    self.window = (steps[0], steps[-1]) if steps and enabled else None
    self.log_dir = log_dir
    self.active = False

  def before_step(self, step: int) -> None:
    """Starts the trace if `step` (about to run) is the first one of the window left."""
    if self.window and not self.active and self.window[0] <= step <= self.window[1]:
      jax.profiler.start_trace(self.log_dir, create_perfetto_trace=True)
      self.active = True
      self._first = step

  def after_step(self, step: int, outputs: Any) -> None:
    """Stops the trace after the window's last step, once its outputs are computed."""
    if self.active and step >= self.window[1]:
      jax.block_until_ready(outputs)  # steps are asynchronous: wait for the traced work
      self._stop(step)

  def close(self) -> None:
    """Stops a trace the loop left open (a run stopped inside the window)."""
    if self.active:
      self._stop(None)

  def _stop(self, step: int | None) -> None:
    jax.profiler.stop_trace()
    self.active = False
    self.window = None  # one window per run
    logging.info('profile of steps %d..%s in %s/plugins/profile', self._first,
                 step if step is not None else 'stop', self.log_dir)
