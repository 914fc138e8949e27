"""`lm-jax` command line: train | eval | plan | prepare | sweep | convert | generate | chat | harness.

  lm-jax train --config configs/quickstart.py [--config.train.steps=100 ...]
  lm-jax eval  --config configs/quickstart.py [--step N|best] [--split val|test]
  lm-jax sweep experiments/sweeps/quickstart_lr_width.py [--parallel N | --dry-run | ...]
  lm-jax convert --from-hf HF_DIR --to RUN_DIR | --to-hf OUT_DIR --run RUN_DIR [--step N]
  lm-jax generate --run RUN_DIR --prompt TEXT | --prompts-file F [--config.sample.*=...]
  lm-jax fill-mask --run RUN_DIR --text 'The [MASK] sat' | --texts-file F [--top-k 5]
  lm-jax prepare --config configs/x.py   (tokenize the corpus ahead of training)

User mistakes (config, data paths, incompatible checkpoints) print one
message and exit 2; a diverged run exits 1 and keeps its last good checkpoint.
Multi-process runs (lm_jax/distributed.py) give every process the same command
plus --config.distributed.* (or detect a TPU pod / SLURM step); processes that
do not all join within distributed.initialization_timeout exit 1.
"""

import argparse
import json
import logging
import sys

from lm_jax import distributed
from lm_jax.config.loader import ConfigError, exit_on_config_error, parse_cli_config

COMMANDS = ('train', 'eval', 'plan', 'prepare', 'sweep', 'convert', 'generate', 'chat',
            'harness', 'fill-mask')
# Commands reading a run directory's saved config (--run), not a --config file.
RUN_COMMANDS = {'generate': 'lm_jax.generate.command', 'chat': 'lm_jax.generate.command',
                'harness': 'lm_jax.harness.command', 'fill-mask': 'lm_jax.generate.fill_mask'}
USAGE = '''usage: lm-jax {train,eval,plan,prepare} --config CONFIG.py[:arg] [--config.a.b=value ...]
       lm-jax sweep SWEEP.py [--parallel N] [--dry-run | --emit tpu|slurm | --collect]
       lm-jax convert --from-hf HF_DIR --to RUN_DIR [--config F] | --to-hf OUT_DIR --run RUN_DIR
       lm-jax {generate,chat,harness} --run RUN_DIR [--step N] [--config.sample.*=...] ...
       lm-jax fill-mask --run RUN_DIR [--step N] --text TEXT | --texts-file F [--top-k K]

  train   train (or resume, if the run directory has checkpoints)
  eval    evaluate a checkpoint ([--step N|best], default latest) on the validation split,
          or on the test split with --split test (never read during training)
  plan    choose mesh, remat and microbatches for --devices N --device KIND (no data needed)
  prepare tokenize the corpus into the token files train uses (docs/data.md); train runs it
          itself when they are missing
  sweep   run a sweep file's runs (N at a time), list them, emit launches, or collect results
  convert import a Hugging Face model directory as a run, or export a run's checkpoint to one
  generate  continue --prompt TEXT (streamed) or each line of --prompts-file F (JSONL out)
  chat      answer messages read from stdin, one a line (--template qa|none, --history)
  harness   lm-evaluation-harness tasks on a checkpoint (--tasks T1,T2 [--include-path DIR])
  fill-mask top-k predictions for each [MASK] of --text (a table) or --texts-file (JSONL),
            from an encoder (BERT) run'''


def _setup_logging():
  logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                      format='%(asctime)s %(levelname).1s %(message)s',
                      datefmt='%H:%M:%S')
  for noisy in ('absl', 'jax._src', 'orbax', 'grain'):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def _train(config, rest):
  if rest:
    raise ConfigError(f'unknown arguments for train: {" ".join(rest)}\n{USAGE}')
  # Before JAX starts its backend: keep XLA:CPU's per-step buffers mapped
  # (1.1-1.2x faster CPU steps; the benchmark measures the same setting).
  from lm_jax.metrics.hardware import tune_cpu_allocator
  tune_cpu_allocator()
  distributed.initialize(config.distributed)  # before anything touches a device
  from lm_jax.launch import train
  from lm_jax.train.loop import TrainingDiverged
  try:
    result = train(config)
  except TrainingDiverged as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  print(json.dumps(result, indent=1, sort_keys=True))


def _eval(config, rest):
  parser = argparse.ArgumentParser(prog='lm-jax eval', add_help=False)
  parser.add_argument('--step', default=None)
  parser.add_argument('--split', default='val')
  args, unknown = parser.parse_known_args(rest)
  if unknown:
    raise ConfigError(f'unknown arguments for eval: {" ".join(unknown)}\n{USAGE}')
  if args.step is not None and args.step != 'best':
    if not args.step.isdigit():
      raise ConfigError(f'--step {args.step}: give a step number or best')
    args.step = int(args.step)
  distributed.initialize(config.distributed)
  from lm_jax.evaluate import evaluate_checkpoint
  print(json.dumps(evaluate_checkpoint(config, args.step, args.split), indent=1,
                   sort_keys=True))


def _prepare(config, rest):
  if rest:
    raise ConfigError(f'unknown arguments for prepare: {" ".join(rest)}\n{USAGE}')
  import jax
  from lm_jax.build import task_of
  from lm_jax.checkpoint import has_checkpoint
  from lm_jax.config.validate import validate
  from lm_jax.data.pipeline import build_data
  validate(config, device_count=jax.device_count())
  try:  # the same call as a run's: train finds exactly these files
    data = build_data(config.data, global_batch_size=config.train.global_batch_size,
                      run_dir=config.logging.run_dir, task=task_of(config),
                      resuming=has_checkpoint(config.logging.run_dir))
  except ValueError as e:
    raise ConfigError(f'config.data: {e}') from e
  print(json.dumps({'tokens': data.tokens_path, 'vocab_size': data.vocab_size,
                    'train_tokens': data.train_tokens, 'val_tokens': data.val_tokens,
                    'test_tokens': data.test_tokens, 'specials': data.specials},
                   indent=1, sort_keys=True))


def _plan(config, rest):
  from lm_jax.plan.command import plan_command  # CPU only, no data
  sys.exit(plan_command(config, rest))


@exit_on_config_error
def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ('-h', '--help'):
    print(USAGE, file=sys.stderr)
    sys.exit(0 if argv else 2)
  if argv[0] not in COMMANDS:
    raise ConfigError(f'unknown command {argv[0]!r}; choose one of {", ".join(COMMANDS)}\n{USAGE}')
  command, rest = argv[0], argv[1:]
  if command == 'sweep':  # takes a sweep file, not --config
    from lm_jax.sweep.command import sweep_command
    sys.exit(sweep_command(rest))
  if command == 'convert':  # --config is optional
    _setup_logging()
    from lm_jax.interop.command import main as convert_main
    convert_main(rest)
    return
  if command in RUN_COMMANDS:
    _setup_logging()
    import importlib
    module = importlib.import_module(RUN_COMMANDS[command])
    sys.exit(getattr(module, f'{command.replace("-", "_")}_command')(rest))
  config, rest = parse_cli_config(rest)
  _setup_logging()
  {'train': _train, 'eval': _eval, 'plan': _plan, 'prepare': _prepare}[command](config, rest)


if __name__ == '__main__':
  main()
