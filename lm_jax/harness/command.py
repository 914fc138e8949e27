"""`lm-jax harness --run RUN_DIR --tasks T1,T2 [--include-path DIR] [--limit N]`: lm-eval tasks."""

import argparse
import json
import sys

from lm_jax.errors import ConfigError


def evaluate_tasks(loaded, tasks: list[str], include_path: str | None = None,
                   limit: int | None = None, batch_size: int = 8) -> dict:
  """lm_eval.simple_evaluate of `tasks` on a loaded run; returns lm-eval's results dict."""
  import lm_eval  # pylint: disable=g-import-not-at-top
  from lm_eval.tasks import TaskManager
  from lm_jax.harness.model import LmJaxLM
  manager = TaskManager(include_path=include_path) if include_path else TaskManager()
  unknown = [t for t in tasks if t not in manager.all_tasks]
  if unknown:
    raise ConfigError(f'--tasks: unknown lm-eval task(s) {", ".join(unknown)}'
                      + (f' (also looked in --include-path {include_path})' if include_path
                         else '; give --include-path DIR for local task YAMLs'))
  return lm_eval.simple_evaluate(model=LmJaxLM(loaded=loaded, batch_size=batch_size),
                                 tasks=tasks, task_manager=manager, limit=limit)


def harness_command(argv) -> int:
  """Runs `lm-jax harness`; prints {task: {metric: value}} as JSON; returns the exit code."""
  try:
    import lm_eval  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise ConfigError("lm-jax harness needs lm-eval: pip install -e '.[harness]'") from e
  from lm_jax.generate.load import load_run
  parser = argparse.ArgumentParser(prog='lm-jax harness', add_help=False)
  parser.add_argument('--run', required=True)
  parser.add_argument('--step', type=int, default=None)
  parser.add_argument('--tasks', required=True)
  parser.add_argument('--include-path', default=None)
  parser.add_argument('--limit', type=int, default=None)
  parser.add_argument('--batch-size', type=int, default=8)
  parser.add_argument('--output', default=None)
  try:
    args, overrides = parser.parse_known_args(argv)
  except SystemExit as e:
    raise ConfigError(f'lm-jax harness: bad arguments {" ".join(argv)}\n{__doc__}') from e
  loaded = load_run(args.run, args.step, overrides)
  if loaded.config.sample.num_beams != 1:
    # lm-eval passes its own generation settings per request (greedy or sampled).
    raise ConfigError(f'config.sample.num_beams={loaded.config.sample.num_beams}: lm-jax '
                      'harness generates as each lm-eval task asks (greedy or sampled); '
                      'valid: 1')
  results = evaluate_tasks(loaded, [t for t in args.tasks.split(',') if t],
                           args.include_path, args.limit, args.batch_size)
  summary = {'step': loaded.step, 'results': results['results']}
  text = json.dumps(summary, indent=1, sort_keys=True, default=str)
  if args.output:
    with open(args.output, 'w', encoding='utf-8') as f:
      f.write(text + '\n')
  print(text)
  return 0
