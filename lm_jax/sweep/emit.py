"""A sweep as launch commands for tpu_setup/: one `tpu.py launch` per run, or one SLURM job array.

lm_jax does not import tpu_setup/ (a folder of scripts, not part of the
package): it prints their command lines, and for SLURM writes the list of runs
(`<sweep dir>/slurm_array.json`: [{"name": ..., "overrides": [...]}]) that
`tpu_setup/slurm.py --array` turns into one array task per run, each in
`<--run-dir>/<name>`.
"""

import json
import os
import shlex

from lm_jax.errors import ConfigError
from lm_jax.sweep.spec import Sweep, SweepRun

TARGETS = ('tpu', 'slurm')
ARRAY_FILE = 'slurm_array.json'
# Set by the emitter from the sweep itself; a launcher argument would contradict it.
_OWNED_FLAGS = ('--config', '--run-dir', '--array')


def _check_extra(extra: list[str]) -> None:
  for arg in extra:
    if arg.split('=', 1)[0] in _OWNED_FLAGS:
      raise ConfigError(f'launcher argument {arg!r} is set by the sweep (its config and '
                        'run directories); move the runs with --root DIR')


def tpu_launches(sweep: Sweep, runs: list[SweepRun], extra: list[str]) -> list[list[str]]:
  """`python tpu_setup/tpu.py launch EXTRA --config C --run-dir DIR OVERRIDES`, one per run."""
  _check_extra(extra)
  return [['python', 'tpu_setup/tpu.py', 'launch', *extra, '--config', sweep.config,
           '--run-dir', run.run_dir, *run.overrides] for run in runs]


def slurm_launch(sweep: Sweep, directory: str, extra: list[str]) -> list[str]:
  """`python tpu_setup/slurm.py --job-name NAME EXTRA --config C --run-dir DIR --array FILE`."""
  _check_extra(extra)
  return ['python', 'tpu_setup/slurm.py', '--job-name', sweep.name, *extra,
          '--config', sweep.config, '--run-dir', directory,
          '--array', os.path.join(directory, ARRAY_FILE)]


def write_array_file(runs: list[SweepRun], directory: str) -> str:
  """Writes `<directory>/slurm_array.json` (run names and override flags); returns its path."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, ARRAY_FILE)
  with open(path, 'w', encoding='utf-8') as f:
    json.dump([{'name': run.name, 'overrides': run.overrides} for run in runs], f, indent=1)
    f.write('\n')
  return path


def emit(target: str, sweep: Sweep, runs: list[SweepRun], directory: str,
         extra: list[str]) -> str:
  """The text `lm-jax sweep --emit TARGET` prints (writing the array file for slurm)."""
  if target == 'tpu':
    lines = [f'# sweep {sweep.name}: {len(runs)} runs. A launch takes the whole slice: start '
             'the next when a run has ended (tpu.py logs), or give each its own --name.']
    lines += [shlex.join(cmd) for cmd in tpu_launches(sweep, runs, extra)]
  else:
    command = slurm_launch(sweep, directory, extra)
    path = write_array_file(runs, directory)
    lines = [f'# sweep {sweep.name}: {len(runs)} runs as one SLURM job array '
             f'(runs listed in {path}); add --dry-run to see the sbatch script.',
             shlex.join(command)]
  return '\n'.join(lines) + '\n'
