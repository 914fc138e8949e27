"""Where a CPU train step's time goes, by kind of op: lm_jax's step, or the PyTorch reference's.

    python experiments/profile_step.py --config experiments/bench_nanogpt_cpu.py \
        --config.mesh.data=1 [--config.model.num_layers=4 ...] [--steps 20] [--torch]

lm_jax: traces --steps steps of experiments/benchmark.py's TrainStep (the step
`lm-jax train` runs) with jax.profiler, reads the trace back
(jax.profiler.ProfileData) and sums each XLA op's time per step by kind, the
kind read off the compiled HLO: YNNPACK fusions by what they hold (dot,
reduce, ...), Eigen dots, loop fusions, the rest. Also prints the step's wall
time, the time any XLA thread ran an op, and the Python dispatch of one step.
Times are thread time: two ops running at once on the two threads both count.

--torch: the same shape in PyTorch eager (experiments/torch_ref/gpt.py, the
config's layers / heads / d_model / seq_len / batch / vocab_size), through
torch.profiler, by aten op (self CPU time per step).

docs/performance.md quotes this script's output for the baby model.
"""

import argparse
import collections
import glob
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lm_jax.config import parse_cli_config  # noqa: E402
from lm_jax.config.loader import exit_on_config_error  # noqa: E402
from lm_jax.metrics import hardware  # noqa: E402

# Events of the XLA runtime itself, not of an op.
_RUNTIME_EVENTS = ('ThunkExecutor', 'SlinkyThreadPool', 'ThreadpoolListener', 'end:')


def op_kinds(hlo_text: str) -> dict[str, str]:
  """Instruction name of the entry computation -> its kind ('ynn: dot', 'loop fusion', ...)."""
  bodies = {m.group(1): m.group(2)
            for m in re.finditer(r'\n(%[\w.\-]+) .*?\{\n(.*?)\n\}', hlo_text, re.S)}
  kinds = {}
  for line in hlo_text[hlo_text.index('ENTRY'):].splitlines():
    name = re.match(r'\s*(?:ROOT )?%([\w.\-]+) = ', line)
    if not name:
      continue
    calls = re.search(r'calls=(%[\w.\-]+)', line)
    if 'kind=kCustom' in line and calls:
      ops = set(re.findall(r'= \S+ ([a-z\-]+)\(', bodies.get(calls.group(1), '')))
      ops -= {'parameter', 'bitcast', 'broadcast'}
      kinds[name.group(1)] = 'ynn: ' + ' + '.join(sorted(ops))
    elif 'kind=kLoop' in line:
      kinds[name.group(1)] = 'loop fusion'
    elif re.search(r' (dot|convolution)\(', line):
      kinds[name.group(1)] = 'eigen dot'
    else:
      kinds[name.group(1)] = 'other'
  return kinds


def _merged_busy_ns(intervals) -> int:
  busy, end = 0, None
  start = None
  for s, t in sorted(intervals):
    if end is None or s > end:
      if end is not None:
        busy += end - start
      start, end = s, t
    else:
      end = max(end, t)
  return busy + (end - start if end is not None else 0)


def profile_lm_jax(config, steps: int) -> None:
  import jax
  from jax.profiler import ProfileData

  from experiments.benchmark import TrainStep
  step = TrainStep(config)
  step.run(5)
  trace_dir = tempfile.mkdtemp(prefix='lm_jax_profile_')
  jax.profiler.start_trace(trace_dir)
  for _ in range(steps):
    with jax.profiler.TraceAnnotation('lm_jax_step'):
      step.run(1)
  jax.profiler.stop_trace()
  kinds = op_kinds(step.compiled.as_text())
  data = ProfileData.from_file(
      sorted(glob.glob(os.path.join(trace_dir, '**', '*.xplane.pb'), recursive=True))[-1])
  host = next(p for p in data.planes if p.name == '/host:CPU')
  ns, count, op_intervals, dispatch, step_ns = (collections.Counter(), collections.Counter(),
                                                [], [], 0)
  for line in host.lines:
    for e in line.events:
      if e.name == 'lm_jax_step':
        step_ns += e.duration_ns
      elif e.name.startswith('PjitFunction'):  # the jitted call, nested ones included
        dispatch.append((e.start_ns, e.start_ns + e.duration_ns))
      elif e.name in kinds and not e.name.startswith(_RUNTIME_EVENTS):
        ns[kinds[e.name]] += e.duration_ns
        count[kinds[e.name]] += 1
        op_intervals.append((e.start_ns, e.start_ns + e.duration_ns))
  print(f'lm_jax, {steps} steps traced; per step:')
  print(f'  wall {step_ns / steps / 1e6:.2f} ms; an op running on some XLA thread '
        f'{_merged_busy_ns(op_intervals) / steps / 1e6:.2f} ms; dispatch (the jitted call '
        f'returning) {_merged_busy_ns(dispatch) / steps / 1e6:.2f} ms')
  print(f'  {"kind":<36} {"ms/step":>8} {"ops/step":>9} {"us/op":>7}')
  for kind, total in ns.most_common():
    print(f'  {kind:<36} {total / steps / 1e6:>8.2f} {count[kind] / steps:>9.1f} '
          f'{total / count[kind] / 1e3:>7.1f}')


def profile_torch(config, steps: int) -> None:
  import numpy as np
  import torch
  from torch.profiler import ProfilerActivity, profile

  from experiments.torch_ref.gpt import GPTShape, make_train_step
  m = config.model
  shape = GPTShape(m.num_layers, m.num_heads, m.d_model, config.data.seq_len,
                   config.train.global_batch_size, m.vocab_size)
  _, step = make_train_step(shape)
  tokens = torch.from_numpy(np.random.default_rng(0).integers(
      0, m.vocab_size, (shape.batch_size, shape.seq_len + 1)))
  x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
  for _ in range(5):
    step(x, y)
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(steps):
      step(x, y)
  rows = sorted(prof.key_averages(), key=lambda r: -r.self_cpu_time_total)
  print(f'PyTorch {torch.__version__}, {steps} steps profiled; self CPU time per step:')
  print(f'  {"op":<60} {"ms/step":>8} {"calls/step":>10}')
  for r in rows[:25]:
    print(f'  {r.key[:60]:<60} {r.self_cpu_time_total / steps / 1e3:>8.2f} '
          f'{r.count / steps:>10.1f}')


def main(argv) -> int:
  hardware.tune_cpu_allocator()  # as benchmark.py and `lm-jax train` (before JAX starts)
  config, rest = parse_cli_config(argv)
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--steps', type=int, default=20, help='steps traced')
  parser.add_argument('--torch', action='store_true', help='profile the PyTorch reference')
  args = parser.parse_args(rest)
  if args.steps < 1:
    parser.error('--steps must be >= 1')
  (profile_torch if args.torch else profile_lm_jax)(config, args.steps)
  return 0


if __name__ == '__main__':
  sys.exit(exit_on_config_error(main)(sys.argv[1:]))
