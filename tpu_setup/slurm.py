#!/usr/bin/env python3
"""Multi-node GPU training under SLURM: writes an sbatch script and submits it.

  python tpu_setup/slurm.py --nodes 2 --gpus-per-node 8 --config configs/gpt2_small.py \\
      --run-dir /shared/runs/gpt2 [--config.train.steps=100 ...] --dry-run

One task per GPU: `lm-jax` calls jax.distributed.initialize(), whose SLURM detection takes
the coordinator from the node list, the process id from SLURM_PROCID and this process's GPU
from SLURM_LOCALID. With --dry-run the script and the sbatch command are printed only.

With --array RUNS.json (written by `lm-jax sweep FILE --emit slurm`) the script is a
job array: task i trains run i of the file, in RUN_DIR/<its name>, with its overrides
after the command line's.
"""

import argparse
import json
import os
import shlex
import sys

from common import add_launch_args, check_overrides, parse_env, run, train_command

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_array(path: str) -> list[dict]:
  """The runs of a job array: [{"name": str, "overrides": ["--config.a.b=v", ...]}, ...]."""
  try:
    with open(path) as f:
      runs = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise SystemExit(f'error: cannot read the --array file {path!r}: {e}')
  ok = isinstance(runs, list) and runs and all(
      isinstance(r, dict) and isinstance(r.get('name'), str) and r['name']
      and isinstance(r.get('overrides'), list)
      and all(isinstance(o, str) and o.startswith('--config.') for o in r['overrides'])
      for r in runs)
  if not ok:
    raise SystemExit(f'error: --array file {path!r} must hold a non-empty JSON list of '
                     '{"name": ..., "overrides": ["--config.a.b=value", ...]} (lm-jax sweep '
                     '--emit slurm writes it)')
  return runs


def sbatch_options(args, num_tasks: int = 0) -> list[str]:
  """The `#SBATCH` option lines (one task per GPU; `--array` for num_tasks > 0)."""
  options = [f'--job-name={args.job_name}', f'--nodes={args.nodes}',
             f'--ntasks-per-node={args.gpus_per_node}', f'--gpus-per-node={args.gpus_per_node}']
  if num_tasks:
    options.append(f'--array=0-{num_tasks - 1}')
  for flag, value in (('cpus-per-task', args.cpus_per_task), ('partition', args.partition),
                      ('account', args.account), ('time', args.time),
                      ('output', args.output)):
    if value:
      options.append(f'--{flag}={value}')
  return options + list(args.sbatch_option)


def srun_command(args, overrides: list[str], run_dir: str | None = None) -> list[str]:
  """The srun line: every task runs the same `lm-jax train` (in run_dir, default --run-dir)."""
  cpus = [f'--cpus-per-task={args.cpus_per_task}'] if args.cpus_per_task else []
  return ['srun', '--kill-on-bad-exit=1', '--label', *cpus,
          *train_command(args.config, run_dir or args.run_dir, overrides, args.mesh)]


def array_lines(args, overrides: list[str], runs: list[dict]) -> list[str]:
  """A case over SLURM_ARRAY_TASK_ID setting RUN_DIR and RUN, then the srun line using them."""
  lines = ['case "$SLURM_ARRAY_TASK_ID" in']
  for i, run in enumerate(runs):
    run_dir = f'{args.run_dir.rstrip("/")}/{run["name"]}'
    lines.append(f'  {i}) RUN_DIR={shlex.quote(run_dir)}; RUN=({shlex.join(run["overrides"])}) ;;')
  lines += ['  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;', 'esac']
  placeholder = '@RUN_DIR@'  # a shell-safe word, swapped for the quoted variable below
  srun = shlex.join(srun_command(args, overrides, run_dir=placeholder))
  srun = srun.replace(f'--config.logging.run_dir={placeholder}',
                      '--config.logging.run_dir="$RUN_DIR"')
  return lines + [srun + ' "${RUN[@]}"']


def sbatch_script(args, overrides: list[str]) -> str:
  """The whole sbatch script as text."""
  env = {'JAX_PLATFORMS': 'cuda', **parse_env(args.env)}
  processes = args.nodes * args.gpus_per_node
  runs = read_array(args.array) if args.array else []
  lines = ['#!/bin/bash']
  lines += [f'#SBATCH {option}' for option in sbatch_options(args, len(runs))]
  lines.append('')
  if runs:
    lines.append(f'# A job array of {len(runs)} runs (from {args.array}): each array task '
                 'trains one run.')
  lines += [
      f'# {args.nodes} nodes x {args.gpus_per_node} GPUs = {processes} JAX processes, '
      'one per GPU, forming one global mesh.',
      '# lm-jax calls jax.distributed.initialize(): coordinator = first node of the step,',
      '# process id = SLURM_PROCID, local_device_ids = [SLURM_LOCALID].',
      'set -euo pipefail',
      f'cd {shlex.quote(args.workdir)}',
  ]
  if args.venv:
    lines.append(f'source {shlex.quote(os.path.join(args.venv, "bin", "activate"))}')
  lines += [f'export {key}={shlex.quote(value)}' for key, value in env.items()]
  if runs:
    lines += array_lines(args, overrides, runs)
  else:
    lines.append(shlex.join(srun_command(args, overrides)))
  return '\n'.join(lines) + '\n'


def build_parser() -> argparse.ArgumentParser:
  """The argparse parser; unknown --config.a.b=value arguments go to lm-jax."""
  p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--nodes', type=int, required=True, help='number of nodes')
  p.add_argument('--gpus-per-node', type=int, default=8, help='GPUs (= tasks) per node')
  add_launch_args(p, '--workdir', 'a filesystem every node shares', 'cuda')
  p.add_argument('--workdir', default=REPO_ROOT,
                 help='repository checkout on shared storage (default: this repo)')
  p.add_argument('--venv', default='.venv',
                 help="venv to activate, relative to --workdir ('' : none; default .venv)")
  p.add_argument('--job-name', default='lm_jax', help='SLURM job name')
  p.add_argument('--partition', help='SLURM partition')
  p.add_argument('--account', help='SLURM account')
  p.add_argument('--time', help='time limit, e.g. 24:00:00')
  p.add_argument('--cpus-per-task', type=int, help='CPU cores per task (data loading)')
  p.add_argument('--output', help='SLURM log file (default: slurm-%%j.out where sbatch runs)')
  p.add_argument('--sbatch-option', action='append', default=[], metavar='OPTION',
                 help='any other sbatch option, e.g. --sbatch-option=--exclusive (repeatable)')
  p.add_argument('--script', default=None,
                 help='where to write the script (default: ./JOB_NAME.sbatch)')
  p.add_argument('--array', metavar='RUNS.json',
                 help='a job array with one task per run of this file (lm-jax sweep --emit '
                      'slurm writes it); each run trains in RUN_DIR/<name>')
  p.add_argument('--dry-run', action='store_true', help='print the script and sbatch command only')
  return p


def main(argv: list[str] | None = None) -> None:
  """Entry point: print the script; unless --dry-run, write it and submit it with sbatch."""
  args, extra = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
  if args.nodes < 1 or args.gpus_per_node < 1:
    raise SystemExit('error: --nodes and --gpus-per-node must be at least 1')
  script = sbatch_script(args, check_overrides(extra))
  path = args.script or f'{args.job_name}.sbatch'
  print(f'# {path}' + (' (dry run: not written)' if args.dry_run else ''))
  print(script)
  if not args.dry_run:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
      f.write(script)
  run([['sbatch', path]], args.dry_run)


if __name__ == '__main__':
  main()
