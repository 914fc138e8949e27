"""Decoder, LSTM, GRU, RNN and gated CNN at about equal parameter counts on the same tokens.

Each model is one `lm-jax train` run (a subprocess) on the default corpus
(this Python's standard library, bytes), with the same data, batch, steps,
optimizer and seed, so every run sees the same batches in the same order.
Writes the table (params, tokens, final val bits per byte, tokens/s) to
docs/families_comparison.md and the validation curves to
docs/families_comparison.png.

    python experiments/compare_families.py                 # ~1M params, 300 steps each
    python experiments/compare_families.py --steps 100 --run-root /tmp/cmp
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

from lm_jax.config.loader import apply_overrides, load_config
from lm_jax.metrics.writers import read_jsonl
from lm_jax.models.registry import get_family

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BYTE_VOCAB = 256

# name -> (config file, overrides): each ~1M parameters at the byte vocabulary.
MODELS = {
    'decoder': ('quickstart.py', {'model.num_layers': 5}),
    'lstm': ('lstm_tiny.py', {}),
    'gru': ('gru_tiny.py', {}),
    'rnn': ('rnn_tiny.py', {}),
    'gated_cnn': ('gated_cnn_tiny.py', {}),
}


def _flags(overrides: dict) -> list[str]:
  return [f'--config.{k}={v}' for k, v in overrides.items()]


def _num_params(config_file: str, overrides: dict) -> int:
  config = apply_overrides(load_config(os.path.join(ROOT, 'configs', config_file)),
                           _flags(overrides))
  family = get_family(config.model.family)
  _, model_cfg = family.build(config.model, BYTE_VOCAB, config.mesh)
  return family.num_params(model_cfg)['total']


def _train(name: str, config_file: str, overrides: dict, args) -> float:
  """Runs one model; returns its wall time in seconds."""
  run_dir = os.path.join(args.run_root, name)
  flags = {**overrides, 'logging.run_dir': run_dir, 'train.steps': args.steps,
           'train.eval_every': args.eval_every, 'train.eval_batches': args.eval_batches,
           'optimizer.warmup_steps': max(1, args.steps // 10), 'checkpoint.every': 0,
           'logging.progress': False, 'logging.tensorboard': False,
           'data.cache_dir': os.path.join(args.run_root, 'cache')}
  cmd = [sys.executable, '-m', 'lm_jax.cli', 'train', '--config',
         os.path.join(ROOT, 'configs', config_file), *_flags(flags)]
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')
  start = time.time()
  done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
  if done.returncode:
    raise SystemExit(f'{name} failed:\n{done.stderr[-3000:]}')
  return time.time() - start


def _summary(name: str, args) -> dict:
  rows = read_jsonl(os.path.join(args.run_root, name, 'metrics.jsonl'))
  evals = sorted((r['step'], r['eval/bits_per_byte']) for r in rows if 'eval/bits_per_byte' in r)
  speeds = [r['train/tokens_per_s'] for r in rows if 'train/tokens_per_s' in r]
  tokens = max(r['step'] for r in rows if 'train/loss' in r) * args.tokens_per_step
  return {'curve': evals, 'val_bpb': evals[-1][1], 'tokens': tokens,
          'tokens_per_s': statistics.median(speeds[len(speeds) // 5:])}


def _plot(results: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  for name, r in results.items():
    steps, bpb = zip(*r['curve'])
    ax.plot([s * r['tokens'] / max(steps) / 1e3 for s in steps], bpb, 'o-', ms=3,
            label=f'{name} ({r["params"] / 1e6:.2f}M)')
  ax.set_xlabel('training tokens (thousands)')
  ax.set_ylabel('validation bits per byte')
  ax.grid(alpha=0.3)
  ax.legend()
  ax.set_title('model families at ~equal parameters, same tokens')
  fig.tight_layout()
  fig.savefig(path)


def _table(results: dict, args, wall: dict) -> str:
  load = os.getloadavg()
  lines = [
      '# Model families at about equal parameter counts',
      '',
      f'Written by `python experiments/compare_families.py --steps {args.steps}` on '
      f'{datetime.date.today().isoformat()}, {platform.machine()} with {os.cpu_count()} CPU '
      f'cores (load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} over '
      '1 / 5 / 15 min: the machine was shared, so tokens/s are noisy and low).',
      '',
      f'Same data for every model: the default corpus (this Python\'s standard library), '
      f'byte tokenizer, batch {args.batch} x {args.seq_len} tokens, {args.steps} steps, '
      'AdamW lr 1e-3 with cosine decay, seed 0. Validation bits per byte after the last '
      f'step ({args.eval_batches} validation batches).',
      '',
      '| model | params | tokens | val bits/byte | train tokens/s | wall s |',
      '|---|---:|---:|---:|---:|---:|',
  ]
  for name, r in results.items():
    lines.append(f'| {name} | {r["params"]:,} | {r["tokens"]:,} | {r["val_bpb"]:.3f} | '
                 f'{r["tokens_per_s"]:,.0f} | {wall[name]:.0f} |')
  lines += ['', '![validation curves](families_comparison.png)', '']
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=300)
  parser.add_argument('--eval-every', type=int, default=50)
  parser.add_argument('--eval-batches', type=int, default=8)
  parser.add_argument('--run-root', default=os.path.join(ROOT, 'runs', 'compare_families'))
  parser.add_argument('--doc', default=os.path.join(ROOT, 'docs', 'families_comparison.md'))
  parser.add_argument('--models', default=','.join(MODELS), help='comma-separated subset')
  args = parser.parse_args()
  base = load_config(os.path.join(ROOT, 'configs', 'quickstart.py'))
  args.batch, args.seq_len = base.train.global_batch_size, base.data.seq_len
  args.tokens_per_step = args.batch * args.seq_len
  results, wall = {}, {}
  for name in args.models.split(','):
    config_file, overrides = MODELS[name]
    wall[name] = _train(name, config_file, overrides, args)
    results[name] = {'params': _num_params(config_file, overrides), **_summary(name, args)}
    print(f'{name}: {results[name]["params"]:,} params, val {results[name]["val_bpb"]:.3f} '
          f'bits/byte, {results[name]["tokens_per_s"]:,.0f} tokens/s, {wall[name]:.0f} s',
          flush=True)
  _plot(results, os.path.splitext(args.doc)[0] + '.png')
  with open(args.doc, 'w') as f:
    f.write(_table(results, args, wall))


if __name__ == '__main__':
  main()
