"""The benchmark suite: configs x meshes through experiments/benchmark.py, one table.

    python experiments/bench_suite.py [--suite cpu|gpu] [--steps 10] [--out docs/benchmarks_cpu.md]

Each case runs `experiments/benchmark.py` in its own process (a mesh of k devices
on the CPU is k simulated devices: `--xla_force_host_platform_device_count=k`,
which splits the same cores k ways, so those rows measure the sharded program's
overhead, not a speedup). Columns: compile time, median step time, tokens/s,
MFU (against the peak table of lm_jax/metrics/hardware.py; blank where the
device is not in it) and peak memory (device stats, else the compiled step's
buffers). The JSON records of every case go to --jsonl.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = 'configs/quickstart.py'
NANO = 'experiments/bench_nanogpt_cpu.py'
# suite -> [(label, config, devices, overrides)]
SUITES = {
    'cpu': [
        ('quickstart 1 dev', QUICK, 1, ['--config.mesh.data=1']),
        ('quickstart data=8', QUICK, 8, ['--config.mesh.data=8']),
        ('quickstart fsdp=8', QUICK, 8, ['--config.mesh.data=1', '--config.mesh.fsdp=8']),
        ('quickstart data=2 fsdp=2 tensor=2', QUICK, 8,
         ['--config.mesh.data=2', '--config.mesh.fsdp=2', '--config.mesh.tensor=2']),
        ('quickstart sequence=4 data=2', QUICK, 8,
         ['--config.mesh.data=2', '--config.mesh.sequence=4']),
        ('quickstart stage=2 data=4', QUICK, 8,
         ['--config.mesh.data=4', '--config.mesh.stage=2',
          '--config.mesh.pipeline_microbatches=2']),
        ('quickstart scan+remat 1 dev', QUICK, 1,
         ['--config.mesh.data=1', '--config.model.scan_layers=True',
          '--config.model.remat=full']),
        ('nanogpt 6x384 1 dev', NANO, 1, ['--config.mesh.data=1']),
        ('nanogpt 6x384 llama-style 1 dev', NANO, 1,
         ['--config.mesh.data=1', '--config.model.position=rope', '--config.model.norm=rmsnorm',
          '--config.model.mlp=swiglu', '--config.model.num_kv_heads=2',
          '--config.model.tie_embeddings=False']),
    ],
    'gpu': [
        ('gpt2_small bf16 1 GPU', 'configs/gpt2_small.py', 1, ['--config.mesh.data=1']),
        ('llama_1b bf16 1 GPU', 'configs/llama_1b.py', 1, ['--config.mesh.data=1']),
    ],
}


def run_case(config: str, devices: int, overrides, steps: int, warmup: int, label: str,
             platform_name: str) -> dict:
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  if platform_name == 'cpu':
    env['XLA_FLAGS'] = (f'--xla_force_host_platform_device_count={devices}' if devices > 1
                        else '')
  with tempfile.NamedTemporaryFile(suffix='.jsonl') as out:
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'benchmark.py'),
                           '--config', os.path.join(ROOT, config), *overrides, '--steps',
                           str(steps), '--warmup', str(warmup), '--label', label,
                           '--out', out.name], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if done.returncode:
      return {'label': label, 'error': (done.stderr.strip().splitlines() or ['?'])[-1]}
    return json.loads(open(out.name).read().splitlines()[-1])


def row(r: dict) -> str:
  if 'error' in r:
    return f'| {r["label"]} | failed: {r["error"][:120]} | | | | | | |'
  mfu = '' if r['mfu'] != r['mfu'] else f'{r["mfu"]:.3f}'  # NaN: device not in the peak table
  return (f'| {r["label"]} | {r["num_devices"]} | {r["num_params"]["total"] / 1e6:.2f}M | '
          f'{r["compile_s"]:.1f} | {r["step_ms_median"]:.1f} | {r["tokens_per_s"]:,.0f} | '
          f'{mfu} | {r["peak_memory_bytes"] / 2**20:,.0f} |')


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--suite', choices=sorted(SUITES), default='cpu')
  p.add_argument('--steps', type=int, default=10)
  p.add_argument('--warmup', type=int, default=2)
  p.add_argument('--out', default='', help='write the Markdown table here too')
  p.add_argument('--jsonl', default='', help='append every record here')
  a = p.parse_args()
  platform_name = 'gpu' if a.suite == 'gpu' else 'cpu'
  lines = [f'Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {platform.node()} '
           f'({os.cpu_count()} cores), {a.steps} timed steps per case.', '',
           '| case | devices | params | compile s | step ms | tokens/s | MFU | peak MB |',
           '|---|---:|---:|---:|---:|---:|---:|---:|']
  for label, config, devices, overrides in SUITES[a.suite]:
    record = run_case(config, devices, overrides, a.steps, a.warmup, label, platform_name)
    lines.append(row(record))
    print(lines[-1], flush=True)
    if a.jsonl:
      with open(a.jsonl, 'a') as f:
        f.write(json.dumps(record) + '\n')
  print('\n'.join(lines))
  if a.out:
    with open(a.out, 'w') as f:
      f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
  main()
