#!/usr/bin/env python3
"""Cloud TPU VM slices with gcloud: create | install | launch | logs | stop | delete.

  python tpu_setup/tpu.py create  --name my-slice --zone us-central2-b --accelerator v4-32 --dry-run
  python tpu_setup/tpu.py install --name my-slice --zone us-central2-b --dry-run
  python tpu_setup/tpu.py launch  --name my-slice --zone us-central2-b \\
      --config configs/gpt2_small.py --run-dir /mnt/shared/runs/gpt2 --config.train.steps=100 --dry-run
  python tpu_setup/tpu.py logs | stop | delete --name my-slice --zone us-central2-b --dry-run

Every subcommand prints the commands it runs; with --dry-run it only prints them.
Remote paths are relative to the TPU VM user's home directory.
"""

import argparse
import os
import shlex
import sys

from common import (Command, add_launch_args, check_overrides, parse_env, run,
                    train_command)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runtime (software) version per TPU generation, used when --version is not given.
RUNTIME_VERSIONS = {
    'v4': 'tpu-ubuntu2204-base',
    'v5litepod': 'v2-alpha-tpuv5-lite',  # v5e
    'v5p': 'v2-alpha-tpuv5',
    'v6e': 'v2-alpha-tpuv6e',
}
ACCELERATOR_ALIASES = {'v5e': 'v5litepod'}  # v5e-16 -> v5litepod-16

TARBALL_EXCLUDES = ('./.git', './.venv', './.venv-ci', './runs', './build', './.whl', '.cache',
                    '__pycache__', '*.egg-info', '.pytest_cache')
LOG = 'logs/train.log'  # per worker, on the worker's own disk, under --remote-dir
PID = 'logs/train.pid'


def accelerator_type(accelerator: str) -> str:
  """'v5e-16' -> 'v5litepod-16'; other names are passed through unchanged."""
  family, _, size = accelerator.rpartition('-')
  return f'{ACCELERATOR_ALIASES.get(family, family)}-{size}'


def runtime_version(accelerator: str, version: str | None) -> str:
  """The --version given, else the default runtime for the accelerator's generation."""
  if version:
    return version
  family = accelerator_type(accelerator).rpartition('-')[0]
  if family not in RUNTIME_VERSIONS:
    raise SystemExit(f'error: no default runtime version for {accelerator!r}; pass --version')
  return RUNTIME_VERSIONS[family]


def location(args) -> list[str]:
  """--zone and, if given, --project flags for every gcloud command."""
  return [f'--zone={args.zone}'] + ([f'--project={args.project}'] if args.project else [])


def ssh(args, remote: str, worker: str = 'all') -> Command:
  """`gcloud ... tpu-vm ssh` running the shell string `remote` on `worker` (default: all)."""
  return ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', args.name, *location(args),
          f'--worker={worker}', f'--command={remote}']


# ---------------------------------------------------------------------------
# Subcommands: each returns the list of commands to run.


def create_commands(args) -> list[Command]:
  """Creates the slice directly, or as a queued resource with --queued."""
  accel = accelerator_type(args.accelerator)
  version = runtime_version(args.accelerator, args.version)
  spot = ['--spot'] if args.spot else []
  if args.queued:
    return [['gcloud', 'compute', 'tpus', 'queued-resources', 'create', args.name,
             f'--node-id={args.name}', *location(args), f'--accelerator-type={accel}',
             f'--runtime-version={version}', *spot]]
  return [['gcloud', 'compute', 'tpus', 'tpu-vm', 'create', args.name, *location(args),
           f'--accelerator-type={accel}', f'--version={version}', *spot]]


def _setup_script(args) -> str:
  """Remote shell: a Python >= 3.11 venv (via uv; TPU images ship 3.10), then lm_jax + jax[tpu]."""
  d = shlex.quote(args.remote_dir)
  return (f'python3 -m pip install --user --quiet --upgrade uv && cd {d} && '
          f'(test -x .venv/bin/python || ~/.local/bin/uv venv --python {args.python} .venv) && '
          '~/.local/bin/uv pip install --python .venv/bin/python -e . "jax[tpu]"')


def install_commands(args) -> list[Command]:
  """Puts the code on every worker (git clone, or a tarball of this tree) and installs it."""
  d = shlex.quote(args.remote_dir)
  if args.repo_url:
    branch = f'--branch {shlex.quote(args.branch)} ' if args.branch else ''
    fetch = (f'if [ -d {d}/.git ]; then git -C {d} pull --ff-only; '
             f'else git clone {branch}{shlex.quote(args.repo_url)} {d}; fi')
    return [ssh(args, f'{fetch} && {_setup_script(args)}')]
  tarball = os.path.basename(args.tarball)
  excludes = [f'--exclude={pattern}' for pattern in TARBALL_EXCLUDES]
  unpack = (f'mkdir -p {d} && tar -xzf {shlex.quote(tarball)} -C {d} '
            f'&& rm {shlex.quote(tarball)}')
  return [
      ['tar', '-czf', args.tarball, *excludes, '-C', args.source, '.'],
      ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', args.tarball, f'{args.name}:{tarball}',
       *location(args), '--worker=all'],
      ssh(args, f'{unpack} && {_setup_script(args)}'),
  ]


def launch_script(args, overrides: list[str]) -> str:
  """Remote shell: start `lm-jax train` in the background with nohup, log and pid in logs/."""
  env = {'JAX_PLATFORMS': 'tpu', **parse_env(args.env)}
  train = train_command(args.config, args.run_dir, overrides, args.mesh,
                        executable='.venv/bin/lm-jax')
  cmd = shlex.join(['env', *(f'{k}={v}' for k, v in env.items()), *train])
  return (f'set -e; cd {shlex.quote(args.remote_dir)}; mkdir -p logs; '
          f'nohup {cmd} >> {LOG} 2>&1 < /dev/null & echo $! > {PID}; '
          f'echo "$(hostname): started pid $(cat {PID}), log ~/{args.remote_dir}/{LOG}"')


def launch_commands(args, overrides: list[str]) -> list[Command]:
  """The same training command on every worker at once (jax.distributed needs all of them)."""
  if args.run_dir.startswith('gs://'):
    print('warning: a gs:// run_dir is not supported by the training loop yet; '
          'use a path every worker mounts (gcsfuse, Filestore/NFS)', file=sys.stderr)
  return [ssh(args, launch_script(args, overrides))]


def logs_commands(args) -> list[Command]:
  """Follows the training log of one worker (or of all, interleaved)."""
  log = f'{shlex.quote(args.remote_dir)}/{LOG}'
  return [ssh(args, f'tail -n {args.lines} -F {log}', worker=args.worker)]


def stop_commands(args) -> list[Command]:
  """Signals the launched process on every worker (TERM: it saves a checkpoint and exits)."""
  d = shlex.quote(args.remote_dir)
  return [ssh(args, f'cd {d} && if [ -f {PID} ]; then kill -s {args.signal} "$(cat {PID})"; '
                    f'rm -f {PID}; else echo "$(hostname): no {PID}"; fi')]


def delete_commands(args) -> list[Command]:
  """Deletes the slice (with --queued: the queued resource and its TPU)."""
  if args.queued:
    return [['gcloud', 'compute', 'tpus', 'queued-resources', 'delete', args.name,
             *location(args), '--force', '--quiet']]
  return [['gcloud', 'compute', 'tpus', 'tpu-vm', 'delete', args.name, *location(args),
           '--quiet']]


# ---------------------------------------------------------------------------
# Command line


def _common_flags() -> argparse.ArgumentParser:
  """Flags every subcommand takes."""
  p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
  p.add_argument('--name', required=True, help='TPU VM (slice) name')
  p.add_argument('--zone', required=True, help='e.g. us-central2-b (v4), us-east5-a (v5p)')
  p.add_argument('--project', help='GCP project (default: gcloud config)')
  p.add_argument('--remote-dir', default='lm_jax',
                 help='repository directory on each worker, relative to home (default: lm_jax)')
  p.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
  return p


def build_parser() -> argparse.ArgumentParser:
  """The argparse parser with one subparser per subcommand."""
  parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  common = [_common_flags()]
  add = lambda name, help: sub.add_parser(name, help=help, parents=common, allow_abbrev=False)

  p = add('create', 'create the slice')
  p.add_argument('--accelerator', required=True,
                 help='accelerator type: v4-32, v5p-32, v5e-16 (= v5litepod-16), v6e-16, ...')
  p.add_argument('--version', help='runtime version (default by generation: '
                 + ', '.join(f'{k}: {v}' for k, v in RUNTIME_VERSIONS.items()) + ')')
  p.add_argument('--spot', action='store_true', help='spot (preemptible) capacity')
  p.add_argument('--queued', action='store_true', help='create through a queued resource')

  p = add('install', 'copy the code to every worker and pip install it with jax[tpu]')
  p.add_argument('--repo-url', help='git clone this URL on each worker '
                 '(default: scp a tarball of the local working tree)')
  p.add_argument('--branch', help='branch or tag to clone (with --repo-url)')
  p.add_argument('--source', default=REPO_ROOT, help='local tree to pack (default: this repo)')
  p.add_argument('--tarball', default='/tmp/lm_jax.tar.gz', help='local tarball path')
  p.add_argument('--python', default='3.11', help='Python version of the worker venv')

  p = add('launch', 'start `lm-jax train` on every worker; extra --config.a.b=v are passed on')
  add_launch_args(p, 'the repository',
                         'storage every worker shares (e.g. a gcsfuse or NFS mount)', 'tpu')

  p = add('logs', 'follow the training log (tail -F)')
  p.add_argument('--worker', default='0', help='worker index, or all (default: 0)')
  p.add_argument('--lines', type=int, default=100, help='lines of history to show first')

  p = add('stop', 'signal the training process on every worker')
  p.add_argument('--signal', default='TERM', help='TERM (checkpoint, then exit) or KILL')

  p = add('delete', 'delete the slice')
  p.add_argument('--queued', action='store_true', help='it was created with --queued')
  return parser


def commands_for(argv: list[str]) -> tuple[argparse.Namespace, list[Command]]:
  """Parses argv and returns (args, the commands that the subcommand runs)."""
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if args.command == 'launch':
    return args, launch_commands(args, check_overrides(extra))
  if extra:
    parser.error(f'unrecognized arguments: {" ".join(extra)}')
  build = {'create': create_commands, 'install': install_commands, 'logs': logs_commands,
           'stop': stop_commands, 'delete': delete_commands}[args.command]
  return args, build(args)


def main(argv: list[str] | None = None) -> None:
  """Entry point: print (and unless --dry-run, run) the subcommand's commands."""
  args, commands = commands_for(sys.argv[1:] if argv is None else argv)
  run(commands, args.dry_run)


if __name__ == '__main__':
  main()
