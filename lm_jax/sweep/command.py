"""`lm-jax sweep FILE`: run a sweep here, list it, emit its launches, or collect its results.

  lm-jax sweep FILE [--parallel N] [--root DIR]   run unfinished runs, then collect
  lm-jax sweep FILE --dry-run                     list the runs: state, name, run dir, overrides
  lm-jax sweep FILE --emit tpu|slurm [-- ARGS]    print tpu_setup/ launches (ARGS passed to them)
  lm-jax sweep FILE --collect                     results.csv, results.md and plots only

Exit code: 0 when every run is done, 1 when one failed or stopped, 2 for a bad
sweep file or override (nothing runs then).
"""

import argparse
import shlex
import sys

from lm_jax.errors import ConfigError
from lm_jax.sweep import collect as collect_lib
from lm_jax.sweep.emit import TARGETS, emit
from lm_jax.sweep.load import check_runs, load_sweep
from lm_jax.sweep.runner import default_parallel, run_sweep, run_state
from lm_jax.sweep.spec import Sweep, SweepRun, expand, fixed_overrides, flags, sweep_dir

USAGE = ('lm-jax sweep FILE [--parallel N] [--root DIR] '
         '[--dry-run | --emit tpu|slurm [-- LAUNCHER ARGS] | --collect]')


class _Parser(argparse.ArgumentParser):
  """argparse whose mistakes are ConfigErrors (one line, exit 2, like the rest of the CLI)."""

  def error(self, message):
    raise ConfigError(f'{message}\nusage: {USAGE}')


def _parser() -> argparse.ArgumentParser:
  p = _Parser(prog='lm-jax sweep', usage=USAGE, allow_abbrev=False)
  p.add_argument('file', help='sweep file: a .py with get_sweep() -> lm_jax.sweep.Sweep')
  p.add_argument('--parallel', type=int, default=None,
                 help=f'runs at a time (default: the cores available, {default_parallel()})')
  p.add_argument('--root', default=None,
                 help='directory above the sweep directory (default: the sweep\'s root)')
  mode = p.add_mutually_exclusive_group()
  mode.add_argument('--dry-run', action='store_true', help='list the runs, run nothing')
  mode.add_argument('--emit', choices=TARGETS, help='print launch commands, run nothing')
  mode.add_argument('--collect', action='store_true', help='only write the table and plots')
  return p


def listing(sweep: Sweep, runs: list[SweepRun], directory: str) -> str:
  """The --dry-run text: a header, then one line per run (state, name, run dir, overrides)."""
  lines = [f'# sweep {sweep.name}: {len(runs)} runs in {directory}, config {sweep.config}',
           f'# every run: {" ".join(flags(fixed_overrides(sweep)))}']
  rows = [(run_state(sweep.config, run), run.name, run.run_dir, ' '.join(flags(run.swept)))
          for run in runs]
  widths = [max(len(r[i]) for r in rows) for i in range(3)]
  lines += ['  '.join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + '  ' + row[3]
            for row in rows]
  return '\n'.join(lines) + '\n'


def _summary(outcomes) -> tuple[str, bool]:
  """'4 done, 1 failed' (statuses in a fixed order) and whether every run is done."""
  counts = {s: sum(o.status == s for o in outcomes) for s in ('done', 'skipped', 'stopped',
                                                               'failed')}
  ok = counts['stopped'] == counts['failed'] == 0
  return ', '.join(f'{n} {status}' for status, n in counts.items() if n), ok


def sweep_command(argv: list[str]) -> int:
  """Runs `lm-jax sweep ARGV`; returns the exit code."""
  extra = []
  if '--' in argv:
    cut = argv.index('--')
    argv, extra = argv[:cut], argv[cut + 1:]
  args = _parser().parse_args(argv)
  if extra and not args.emit:
    raise ConfigError(f'arguments after -- ({shlex.join(extra)}) are for --emit only')
  if args.parallel is not None and args.parallel < 1:
    raise ConfigError(f'--parallel must be at least 1, got {args.parallel}')
  sweep = load_sweep(args.file)
  runs = expand(sweep, args.root)
  directory = sweep_dir(sweep, args.root)
  if args.collect:
    for path in collect_lib.collect(sweep.config, runs, directory):
      print(path)
    return 0
  steps = check_runs(sweep, runs)
  if args.dry_run:
    sys.stdout.write(listing(sweep, runs, directory))
    return 0
  if args.emit:
    sys.stdout.write(emit(args.emit, sweep, runs, directory, extra))
    return 0
  try:
    outcomes = run_sweep(sweep.config, runs, steps, args.parallel or default_parallel())
  except KeyboardInterrupt:
    print(f'sweep {sweep.name}: interrupted; the running runs were stopped (each saves a '
          'checkpoint) and resume when the sweep runs again', file=sys.stderr)
    return 130
  paths = collect_lib.collect(sweep.config, runs, directory)
  text, ok = _summary(outcomes)
  print(f'sweep {sweep.name}: {text}; results in {paths[1]}')
  return 0 if ok else 1

