"""Running a sweep on this machine: `parallel` `lm-jax train` subprocesses at a time.

Each run's subprocess writes `<run_dir>/sweep_stdout.log` and `sweep_stderr.log`
(appended to, one header line per attempt). When it exits the runner writes
`<run_dir>/sweep_status.json`: the exit code, the arguments it ran with and a
status: done (exit 0 and the latest checkpoint is at train.steps), stopped
(exit 0 earlier: a signal stopped it) or failed. A run is finished when that
file says done *with the same arguments*; finished runs are skipped, the
others are started again (`lm-jax train` resumes from the run's latest
checkpoint by itself). A failed run is reported (exit code, stderr tail, log
path) and the others go on.
"""

import dataclasses
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import TextIO

from lm_jax.sweep.spec import SweepRun

STATUS_FILE = 'sweep_status.json'
STDOUT_LOG = 'sweep_stdout.log'
STDERR_LOG = 'sweep_stderr.log'
TAIL_LINES = 15
_POLL_S = 0.2


@dataclasses.dataclass
class Outcome:
  """How one run of this invocation ended: done, skipped (already done) or failed."""
  run: SweepRun
  status: str
  returncode: int | None = None
  seconds: float = 0.0
  stderr_tail: str = ''


def default_parallel() -> int:
  """The CPU cores this process may use (runs share them)."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # not Linux
    return max(1, os.cpu_count() or 1)


def train_args(config: str, run: SweepRun) -> list[str]:
  """`train --config ... --config.logging.run_dir=... overrides`: what `lm-jax` gets."""
  return ['train', '--config', config, f'--config.logging.run_dir={run.run_dir}',
          *run.overrides]


def read_status(run: SweepRun) -> dict:
  """The run's sweep_status.json ({} when it has none or it is unreadable)."""
  try:
    with open(os.path.join(run.run_dir, STATUS_FILE), encoding='utf-8') as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return {}


def run_state(config: str, run: SweepRun) -> str:
  """done (finished with these arguments) | failed (last attempt) | partial | new."""
  status = read_status(run)
  if status.get('status') == 'done' and status.get('args') == train_args(config, run):
    return 'done'
  if status.get('status') == 'failed':
    return 'failed'
  return 'partial' if latest_checkpoint(run) is not None else 'new'


def latest_checkpoint(run: SweepRun) -> int | None:
  """The highest step under <run_dir>/checkpoints (Orbax renames a save into place when done)."""
  ckpt_dir = os.path.join(run.run_dir, 'checkpoints')
  steps = [int(d) for d in os.listdir(ckpt_dir) if d.isdigit()] if os.path.isdir(ckpt_dir) else []
  return max(steps, default=None)


def _write_status(run: SweepRun, record: dict) -> None:
  path = os.path.join(run.run_dir, STATUS_FILE)
  with open(path + '.tmp', 'w', encoding='utf-8') as f:
    json.dump(record, f, indent=1)
  os.replace(path + '.tmp', path)


def _tail(path: str, offset: int, lines: int = TAIL_LINES) -> str:
  """The last `lines` lines written to `path` after byte `offset`."""
  with open(path, 'rb') as f:
    f.seek(offset)
    text = f.read().decode('utf-8', errors='replace')
  return '\n'.join(text.rstrip('\n').splitlines()[-lines:])


class _Active:
  """A started run: its process, log files and where this attempt's stderr begins."""

  def __init__(self, config: str, run: SweepRun, steps: int, env: dict | None):
    os.makedirs(run.run_dir, exist_ok=True)
    self.run, self.steps, self.start = run, steps, time.monotonic()
    self.args = train_args(config, run)
    argv = [sys.executable, '-m', 'lm_jax.cli', *self.args]
    header = f'# {datetime.datetime.now().isoformat(timespec="seconds")} {shlex.join(argv)}\n'
    self.stderr_path = os.path.join(run.run_dir, STDERR_LOG)
    self.stdout = open(os.path.join(run.run_dir, STDOUT_LOG), 'a', encoding='utf-8')
    self.stderr = open(self.stderr_path, 'a', encoding='utf-8')
    for f in (self.stdout, self.stderr):
      f.write(header)
      f.flush()
    self.offset = self.stderr.tell()
    self.process = subprocess.Popen(argv, stdout=self.stdout, stderr=self.stderr,
                                    stdin=subprocess.DEVNULL, env=env)

  def finish(self) -> Outcome:
    """Closes the logs, writes sweep_status.json and says how the run ended."""
    self.stdout.close()
    self.stderr.close()
    rc, seconds = self.process.returncode, time.monotonic() - self.start
    if rc != 0:
      status = 'failed'
    else:  # exit 0 after SIGTERM/SIGINT too: only the checkpoint says it got to the end
      status = 'done' if latest_checkpoint(self.run) == self.steps else 'stopped'
    _write_status(self.run, {'status': status, 'returncode': rc, 'args': self.args,
                             'seconds': round(seconds, 2), 'finished': time.time()})
    tail = '' if rc == 0 else _tail(self.stderr_path, self.offset)
    return Outcome(self.run, status, rc, seconds, tail)


def report(outcome: Outcome, index: int, total: int, out: TextIO) -> None:
  """One line per finished run; a failure adds its exit code, log file and stderr tail."""
  run = outcome.run
  if outcome.status in ('done', 'stopped'):
    print(f'[{index}/{total}] {outcome.status:7s} {run.name} ({outcome.seconds:.1f} s)',
          file=out)
  elif outcome.status == 'failed':
    log = os.path.join(run.run_dir, STDERR_LOG)
    print(f'[{index}/{total}] FAILED  {run.name}: exit code {outcome.returncode} '
          f'after {outcome.seconds:.1f} s; log {log}', file=out)
    for line in outcome.stderr_tail.splitlines():
      print(f'    | {line}', file=out)
  out.flush()


def run_sweep(config: str, runs: list[SweepRun], steps: dict[str, int], parallel: int,
              out: TextIO = sys.stdout, env: dict | None = None) -> list[Outcome]:
  """Runs every unfinished run, `parallel` at a time; returns one Outcome per run, in order.

  `steps` is each run's train.steps (by name): a run is done when its latest
  checkpoint is there.
  """
  outcomes: dict[str, Outcome] = {}
  pending = []
  for run in runs:
    if run_state(config, run) == 'done':
      outcomes[run.name] = Outcome(run, 'skipped')
    else:
      pending.append(run)
  total = len(pending)
  parallel = min(parallel, max(1, total))
  number = {run.name: i + 1 for i, run in enumerate(pending)}
  print(f'{len(outcomes)} of {len(runs)} runs already done; running {total}, '
        f'{parallel} at a time', file=out, flush=True)
  active: list[_Active] = []
  previous = signal.signal(signal.SIGTERM, _interrupt)  # killed like Ctrl-C: stop the runs too
  try:
    while pending or active:
      while pending and len(active) < parallel:
        run = pending.pop(0)
        print(f'[{number[run.name]}/{total}] start   {run.name}', file=out, flush=True)
        active.append(_Active(config, run, steps[run.name], env))
      time.sleep(_POLL_S)
      for job in [j for j in active if j.process.poll() is not None]:
        active.remove(job)
        outcomes[job.run.name] = job.finish()
        report(outcomes[job.run.name], number[job.run.name], total, out)
  except KeyboardInterrupt:
    # Each run saves a checkpoint on SIGTERM; the next `lm-jax sweep` resumes it.
    for job in active:
      if job.process.poll() is None:
        job.process.send_signal(signal.SIGTERM)
    for job in active:
      job.process.wait()
      job.finish()
    raise
  finally:
    signal.signal(signal.SIGTERM, previous)
  return [outcomes[run.name] for run in runs]


def _interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt
