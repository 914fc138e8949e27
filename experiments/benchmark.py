"""Train-step throughput benchmark: compile time, step time, tokens/s, MFU, memory.

    python experiments/benchmark.py --config experiments/bench_nanogpt_cpu.py \
        --config.mesh.data=1 --steps 20 --warmup 3 [--out results.jsonl]

Builds the model, sharded train state and jitted train step the way training
does (lm_jax.train.state.create_train_state, lm_jax.train.step.jit_train_step,
the mesh and rule table from the config) and feeds it random token batches that
already live on the devices (no data pipeline, so this measures the step only).
By default each timed step is waited on, so 'step_ms' is the median latency of
one step. With --window W the steps run W at a time back to back, waited on
once (as `lm-jax train` runs them between log steps: the Python dispatch of the
next step overlaps the running one), and a step's time is its window's / W.
tokens/s = global batch tokens / median step time. Prints one table row; --out
appends the full record as one JSON line. --serve answers windows asked for on
stdin instead (experiments/step_server.py, for bench_vs_torch.py's lockstep).

Shared machines: on Linux the CPU time other processes used during each step
is read from /proc ('foreign load', a fraction of all cores). Steps with less
than --quiet (default 0.1) foreign load are 'quiet'; their median is reported
as well ('quiet' columns), which is what to compare with numbers taken on an
idle machine. On an accelerator the foreign load does not matter much.

The device count is whatever JAX sees: leave XLA_FLAGS unset for one CPU
device (the tests' --xla_force_host_platform_device_count=8 splits the same
cores eight ways).

Before JAX starts, glibc malloc is told to keep freed memory
(lm_jax.metrics.hardware.tune_cpu_allocator: ~10% faster steps on CPU, RSS
stays at its peak); --no-tune-allocator leaves malloc alone.
"""

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import resource
import sys
import time

import flax.linen as nn
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.step_server import serve  # noqa: E402
from lm_jax.build import build  # noqa: E402
from lm_jax.config import parse_cli_config  # noqa: E402
from lm_jax.config.loader import exit_on_config_error  # noqa: E402
from lm_jax.metrics import flops, hardware  # noqa: E402
from lm_jax.plan.shapes import vocab_size_of  # noqa: E402
from lm_jax.train.step import jit_train_step  # noqa: E402

# Vocabulary sizes of the tokenizers when config.model.vocab_size is 0 (the
# char tokenizer's depends on the corpus: set model.vocab_size for it).

HEADER = (f'{"config":<28} {"dev":>3} {"params":>8} {"B":>4} {"L":>5} '
          f'{"compile_s":>9} {"step_ms":>8} {"tokens/s":>9} {"MFU":>6} '
          f'{"peak_mem_MB":>11} {"quiet":>5} {"q_step_ms":>9} {"q_tokens/s":>10} '
          f'{"q_MFU":>6}')

_CLOCK_TICKS = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def _cpu_seconds() -> tuple[float, float] | None:
  """(busy CPU-seconds of the whole machine, of this process), None off Linux."""
  try:
    with open('/proc/stat') as f:
      ticks = [int(t) for t in f.readline().split()[1:]]
    with open('/proc/self/stat') as f:
      fields = f.read().rsplit(')', 1)[1].split()
  except OSError:
    return None
  busy = sum(ticks) - ticks[3] - ticks[4]  # minus idle and iowait
  own = int(fields[11]) + int(fields[12])  # utime + stime, all threads
  return busy / _CLOCK_TICKS, own / _CLOCK_TICKS


def foreign_load(before, after, seconds: float) -> float:
  """Fraction of all cores used by other processes between two _cpu_seconds()."""
  if before is None or after is None or seconds <= 0:
    return float('nan')
  others = (after[0] - before[0]) - (after[1] - before[1])
  return max(others, 0.0) / (seconds * (os.cpu_count() or 1))


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo on Linux), else platform's best guess."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:  # not Linux: fall through to platform's guess
    return platform.processor() or platform.machine()
  return platform.processor() or platform.machine()


def random_batches(num: int, built, vocab: int, seed=0):
  """`num` random global batches of `built`'s batch spec, already placed on the devices:
  token ids uniform in [0, vocab), float arrays (weights) ones."""
  rng = np.random.default_rng(seed)
  batches = []
  for _ in range(num):
    host = {k: (rng.integers(0, vocab, size=shape, dtype=np.int32)
                if np.issubdtype(dtype, np.integer) else np.ones(shape, dtype))
            for k, (shape, dtype) in built.batch_spec.items()}
    batches.append({k: jax.device_put(v, built.batch_sharding) for k, v in host.items()})
  return batches


def memory_report(compiled) -> dict:
  """Peak device memory (memory_stats where the backend has it), the compiled
  step's buffer sizes, and the process's max RSS (all in bytes)."""
  report = {}
  stats = jax.devices()[0].memory_stats()
  if stats:
    report['device_peak_bytes'] = stats.get('peak_bytes_in_use')
  analysis = compiled.memory_analysis()
  if analysis is not None:
    for name in ('argument', 'output', 'temp', 'alias'):
      report[f'compiled_{name}_bytes'] = getattr(analysis, f'{name}_size_in_bytes')
    # Donated state aliases its outputs: count those bytes once.
    report['compiled_total_bytes'] = (analysis.argument_size_in_bytes
                                      + analysis.output_size_in_bytes
                                      + analysis.temp_size_in_bytes
                                      - analysis.alias_size_in_bytes)
  report['max_rss_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return report


def peak_memory_bytes(mem: dict) -> int:
  """The headline peak: device stats, else the compiled step's buffers."""
  return mem.get('device_peak_bytes') or mem.get('compiled_total_bytes') or 0


class TrainStep:
  """The train step of `config` built, compiled and fed the way `lm-jax train` runs it.

  `run(n)` dispatches n steps back to back and waits once, on the last step's
  loss, as the trainer does between two log steps (JAX dispatches
  asynchronously, so the next step's dispatch overlaps the running one).
  """

  def __init__(self, config):
    self.devices = jax.devices()
    vocab = vocab_size_of(config)
    self.built = built = build(config, vocab, self.devices)
    self.state = built.init_state()
    step = jit_train_step(built.objective, config.train.microbatches, built.schedule,
                          built.state_shardings, built.batch_sharding, built.replicated)
    self.batches = random_batches(4, built, vocab)
    self.calls = 0
    with self.context():
      start = time.perf_counter()
      self.compiled = step.lower(self.state, self.batches[0]).compile()
      self.compile_s = time.perf_counter() - start

  @contextlib.contextmanager
  def context(self):
    with jax.set_mesh(self.built.mesh), nn.logical_axis_rules(self.built.rules):
      yield

  def run(self, n: int) -> dict:
    """n steps; returns the last step's metrics, once they are computed."""
    with self.context():
      for _ in range(n):
        self.state, metrics = self.compiled(self.state,
                                            self.batches[self.calls % len(self.batches)])
        self.calls += 1
      jax.block_until_ready(metrics['loss'])  # one execution: every output is ready
    return metrics


def run(config, steps: int, warmup: int, measure_peak: bool = False,
        label: str = '', quiet: float = 0.1, allocator_tuned: bool = False,
        window: int = 1) -> dict:
  """Builds and times the train step of `config`; returns the result record.

  The `steps` timed steps run in windows of `window` back-to-back steps (1: each
  step waited on, its latency; more: the trainer's pipelined throughput, which
  also hides the Python dispatch); a step's time is its window's time / window.
  """
  step_under_test = TrainStep(config)
  built, devices = step_under_test.built, step_under_test.devices
  mesh_shape, model_cfg, family = built.mesh_shape, built.model_cfg, built.family
  batch_size, seq_len = config.train.global_batch_size, config.data.seq_len
  compiled, compile_s = step_under_test.compiled, step_under_test.compile_s
  if warmup:
    step_under_test.run(warmup)
  step_s, loads = [], []
  for _ in range(max(steps // window, 1)):  # main() checks that window divides steps
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    metrics = step_under_test.run(window)
    seconds = time.perf_counter() - start
    step_s.append(seconds / window)
    loads.append(foreign_load(cpu_before, _cpu_seconds(), seconds))
  loss = float(metrics['loss'])

  tokens_per_step = batch_size * seq_len
  median_s = float(np.median(step_s))
  tokens_per_s = tokens_per_step / median_s
  quiet_s = [t for t, load in zip(step_s, loads) if load < quiet]
  quiet_median_s = float(np.median(quiet_s)) if quiet_s else float('nan')
  fpt = family.flops_per_token(model_cfg, seq_len)
  # nanoGPT's estimate_mfu counts the full L x L attention: the same count
  # with the causal flag off, for families that have one.
  noncausal_cfg = (dataclasses.replace(model_cfg, causal=False)
                   if 'causal' in {f.name for f in dataclasses.fields(model_cfg)} else model_cfg)
  fpt_noncausal = family.flops_per_token(noncausal_cfg, seq_len)
  peak_per_device = hardware.peak_flops_per_device(
      devices[0], config.model.dtype, config.logging.peak_flops_per_device)
  peak_total = (peak_per_device or 0.0) * len(devices)  # 0: unknown, MFU NaN
  mem = memory_report(compiled)
  record = {
      'label': label,
      'date': datetime.date.today().isoformat(),
      'device_kind': devices[0].device_kind,
      'platform': devices[0].platform,
      'num_devices': len(devices),
      'cpu': cpu_model(),
      'cpu_cores': hardware.cpu_cores(),
      'jax': jax.__version__,
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'allocator_tuned': allocator_tuned,
      'mesh': mesh_shape,
      'family': family.name,
      'num_params': family.num_params(model_cfg),
      'batch_size': batch_size,
      'seq_len': seq_len,
      'dtype': config.model.dtype,
      'compile_s': compile_s,
      'steps': len(step_s) * window,
      'warmup': warmup,
      'window': window,
      'step_ms_median': 1e3 * median_s,
      'step_ms_min': 1e3 * min(step_s),
      'step_ms_max': 1e3 * max(step_s),
      'tokens_per_s': tokens_per_s,
      'foreign_load_median': float(np.median(loads)),
      'quiet_threshold': quiet,
      'quiet_steps': len(quiet_s),
      'quiet_step_ms_median': 1e3 * quiet_median_s,
      'quiet_tokens_per_s': tokens_per_step / quiet_median_s,
      'quiet_mfu': flops.mfu(tokens_per_step / quiet_median_s, fpt['train'],
                             peak_total),
      'step_ms_all': [1e3 * t for t in step_s],
      'foreign_load_all': loads,
      'flops_per_token_train': fpt['train'],
      'flops_per_token_train_noncausal': fpt_noncausal['train'],
      'achieved_flops_per_s': tokens_per_s * fpt['train'],
      'peak_flops_per_device': peak_per_device,
      'mfu': flops.mfu(tokens_per_s, fpt['train'], peak_total),
      'mfu_noncausal': flops.mfu(tokens_per_s, fpt_noncausal['train'], peak_total),
      'loss': loss,
      'memory': mem,
      'peak_memory_bytes': peak_memory_bytes(mem),
  }
  if measure_peak:
    measured = hardware.measure_matmul_peak(device=devices[0])
    record['measured_matmul_peak_per_device'] = measured
    record['mfu_vs_measured_peak'] = flops.mfu(tokens_per_s, fpt['train'],
                                               measured * len(devices))
  return record


def format_row(record: dict, name: str) -> str:
  """One line under HEADER."""
  return (f'{name[:28]:<28} {record["num_devices"]:>3} '
          f'{record["num_params"]["total"] / 1e6:>7.2f}M {record["batch_size"]:>4} '
          f'{record["seq_len"]:>5} {record["compile_s"]:>9.1f} '
          f'{record["step_ms_median"]:>8.1f} {record["tokens_per_s"]:>9.0f} '
          f'{record["mfu"]:>6.3f} {record["peak_memory_bytes"] / 2**20:>11.0f} '
          f'{record["quiet_steps"]:>5} {record["quiet_step_ms_median"]:>9.1f} '
          f'{record["quiet_tokens_per_s"]:>10.0f} {record["quiet_mfu"]:>6.3f}')


def main(argv) -> int:
  tuned = '--no-tune-allocator' not in argv and hardware.tune_cpu_allocator()
  # (before anything starts JAX's backend: see tune_cpu_allocator)
  config, rest = parse_cli_config(argv)
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--steps', type=int, default=20, help='timed steps')
  parser.add_argument('--window', type=int, default=1,
                      help='steps run back to back per timing (1: per-step latency; the '
                           'trainer waits only at log steps)')
  parser.add_argument('--serve', action='store_true',
                      help='build, warm up, then time windows of steps asked for on stdin '
                           '(experiments/step_server.py; bench_vs_torch.py uses it)')
  parser.add_argument('--warmup', type=int, default=3, help='untimed steps after compiling')
  parser.add_argument('--out', default='', help='append the result as a JSON line here')
  parser.add_argument('--label', default='', help='a name for this run in the row and JSON')
  parser.add_argument('--quiet', type=float, default=0.1,
                      help='steps with less foreign CPU load than this are "quiet"')
  parser.add_argument('--no-tune-allocator', action='store_true',
                      help='leave glibc malloc as it is (see the module doc)')
  parser.add_argument('--measure-peak', action='store_true',
                      help='also time a big matmul and report MFU against it')
  args = parser.parse_args(rest)
  if args.steps < 1 or args.warmup < 0 or args.window < 1:
    parser.error('--steps and --window must be >= 1 and --warmup >= 0')
  if args.steps % args.window:
    parser.error(f'--steps {args.steps} is not a multiple of --window {args.window}')
  if args.serve:
    step_under_test = TrainStep(config)
    if args.warmup:
      step_under_test.run(args.warmup)
    serve(step_under_test.run, {'compile_s': step_under_test.compile_s, 'jax': jax.__version__})
    return 0

  config_path = next((a.split('=', 1)[1] if '=' in a else argv[i + 1]
                      for i, a in enumerate(argv)
                      if a == '--config' or a.startswith('--config=')), '')
  name = args.label or os.path.basename(config_path).replace('.py', '')
  record = run(config, args.steps, args.warmup, args.measure_peak, label=name,
               quiet=args.quiet, allocator_tuned=tuned, window=args.window)
  record['config'] = config_path
  record['overrides'] = [a for a in argv if a.startswith('--config.')]
  print(HEADER)
  print(format_row(record, name))
  if args.measure_peak:
    print(f'measured matmul peak {record["measured_matmul_peak_per_device"] / 1e9:.0f} '
          f'GFLOP/s per device; MFU vs it {record["mfu_vs_measured_peak"]:.3f}')
  if args.out:
    with open(args.out, 'a') as f:
      f.write(json.dumps(record) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(exit_on_config_error(main)(sys.argv[1:]))
