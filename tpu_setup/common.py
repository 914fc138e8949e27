"""Helpers shared by tpu.py and slurm.py: the `lm-jax train` command line and running commands."""

import shlex
import subprocess
import sys

# A command is a list of tokens, never a shell string: shlex.join prints it, subprocess runs it.
Command = list[str]


def mesh_overrides(mesh: str | None) -> list[str]:
  """'data=2,fsdp=4' -> ['--config.mesh.data=2', '--config.mesh.fsdp=4']."""
  if not mesh:
    return []
  flags = []
  for item in mesh.split(','):
    axis, sep, size = item.partition('=')
    if not sep or not axis.strip() or not size.strip():
      raise SystemExit(f'error: --mesh wants AXIS=SIZE[,AXIS=SIZE...], got {mesh!r}')
    flags.append(f'--config.mesh.{axis.strip()}={size.strip()}')
  return flags


def check_overrides(extra: list[str]) -> list[str]:
  """Returns the unparsed arguments if they are `--config.a.b=value` overrides, else exits."""
  previous_was_key = False
  for arg in extra:
    if arg.startswith('--config.'):
      previous_was_key = '=' not in arg
    elif previous_was_key:  # the value of '--config.a.b value'
      previous_was_key = False
    else:
      raise SystemExit(f'error: unrecognized argument {arg!r} '
                       '(only --config.a.b=value overrides are passed on to lm-jax)')
  return extra


def train_command(config: str, run_dir: str, overrides: list[str],
                  mesh: str | None = None, executable: str = 'lm-jax') -> Command:
  """The `lm-jax train` tokens every process runs (run_dir first, user overrides last)."""
  return [executable, 'train', '--config', config,
          f'--config.logging.run_dir={run_dir}', *mesh_overrides(mesh), *overrides]


def parse_env(pairs: list[str]) -> dict[str, str]:
  """['A=1', 'B=x y'] -> {'A': '1', 'B': 'x y'}; exits on an item without '='."""
  env = {}
  for pair in pairs:
    key, sep, value = pair.partition('=')
    if not sep or not key:
      raise SystemExit(f'error: --env wants KEY=VALUE, got {pair!r}')
    env[key] = value
  return env


def run(commands: list[Command], dry_run: bool) -> None:
  """Prints each command (copy-pastable); unless dry_run, runs it and stops at the first failure."""
  for cmd in commands:
    print(shlex.join(cmd), flush=True)
    if not dry_run:
      try:
        subprocess.run(cmd, check=True)
      except FileNotFoundError:
        sys.exit(f'error: {cmd[0]!r} not found on PATH (use --dry-run to only print the commands)')
      except subprocess.CalledProcessError as e:
        sys.exit(f'error: command failed with exit code {e.returncode}: {shlex.join(cmd)}')


def add_launch_args(p, relative_to: str, shared_storage: str, platform: str) -> None:
  """The flags every launcher takes: config, run dir, mesh and extra environment."""
  p.add_argument('--config', required=True, help=f'config file, relative to {relative_to}')
  p.add_argument('--run-dir', required=True,
                 help=f'run directory on {shared_storage}')
  p.add_argument('--mesh', help='mesh sizes, e.g. data=4,fsdp=4 (default: the config\'s)')
  p.add_argument('--env', action='append', default=[], metavar='KEY=VALUE',
                 help=f'extra environment variable (repeatable; JAX_PLATFORMS={platform} is set)')
