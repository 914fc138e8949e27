"""Lockstep timing of two train steps that live in two processes.

A *server* builds and warms up one train step, prints one JSON line
`{"ready": true, ...}` and then answers each line `N` on its stdin by running
N steps back to back and printing `{"seconds": s}` (the wall time of the N
steps, synchronised once, after the last). End of input ends it. Servers:
`experiments/benchmark.py --serve` (lm_jax's step) and
`experiments/torch_ref/time_steps.py --serve` (PyTorch's).

The client (`StepServer`) lets a driver alternate windows of the two steps
(experiments/bench_vs_torch.py): each pair of windows is measured within a
second or two of each other, so the host's drift, which moves this shared
machine's throughput by 20-30% within minutes, cancels in the pair's ratio.
Each process keeps its own threads and caches; the idle one waits on a pipe.
"""

import json
import subprocess
import sys
import tempfile
import time
from typing import Callable


def serve(run_steps: Callable[[int], None], ready: dict) -> None:
  """The server loop: `run_steps(n)` runs n steps and returns once they are done."""
  print(json.dumps({'ready': True, **ready}), flush=True)
  for line in sys.stdin:
    n = int(line)
    start = time.perf_counter()
    run_steps(n)
    print(json.dumps({'seconds': time.perf_counter() - start}), flush=True)


class StepServer:
  """One server process: `time(n)` -> seconds for n steps; `close()` ends it."""

  def __init__(self, command: list[str], env=None, cwd=None):
    self.command = command
    self.stderr = tempfile.TemporaryFile(mode='w+')  # a pipe could fill up and block it
    self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=self.stderr, text=True, env=env, cwd=cwd)
    self.info = self._answer()
    if not self.info.get('ready'):
      raise RuntimeError(f'{command[1]} did not start: {self.info}')

  def _answer(self) -> dict:
    while True:
      line = self.proc.stdout.readline()
      if not line:  # the server died: show why
        self.proc.wait()
        self.stderr.seek(0)
        raise RuntimeError(f'{" ".join(self.command)} exited with {self.proc.returncode}:\n'
                           f'{self.stderr.read()[-3000:]}')
      if line.startswith('{'):  # anything else is the server's own chatter
        return json.loads(line)

  def time(self, steps: int) -> float:
    self.proc.stdin.write(f'{steps}\n')
    self.proc.stdin.flush()
    return self._answer()['seconds']

  def close(self) -> None:
    if self.proc.poll() is None:
      self.proc.stdin.close()
      try:
        self.proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        self.proc.kill()
    self.stderr.close()
