"""lm_jax against PyTorch (eager, CPU) on the same GPT and batch, A B A B in one run.

    python experiments/bench_vs_torch.py [--rounds 5] [--steps 20] [--out docs/bench_vs_torch.md]

Two shapes (issue 11): nanoGPT's shakespeare-char "baby" GPT (4 layers, 4 heads,
d_model 128, context 64, batch 12) and the 6 x 384 model at context 256, batch 8
(experiments/bench_nanogpt_cpu.py). Both sides: vocabulary 65, pre-LN, LayerNorm
without bias, learned positions, GELU (tanh), no biases, tied embeddings, fp32,
AdamW with clipping; PyTorch's model is experiments/torch_ref/gpt.py. lm_jax's step is
experiments/benchmark.py's (the step `lm-jax train` runs, on random batches already on
the device). Each measurement is its own process, so neither framework's threads
or caches meet the other's; rounds alternate lm_jax, torch, lm_jax, torch, ... and
the ratio is taken within each round, so drift of a shared machine cancels in part.
Prints per shape the tokens/s of each side (median over rounds) and the ratio
lm_jax / torch as median [min, max] over rounds.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {  # name: (layers, heads, d_model, seq_len, batch)
    'baby 4x128 ctx64 b12': (4, 4, 128, 64, 12),
    'nanogpt 6x384 ctx256 b8': (6, 6, 384, 256, 8),
}
VOCAB = 65


def _env():
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  env.pop('XLA_FLAGS', None)  # one CPU device
  return env


def lm_jax_tokens_per_s(shape, steps: int, warmup: int) -> float:
  layers, heads, d, seq, batch = shape
  with tempfile.NamedTemporaryFile(suffix='.jsonl') as out:
    subprocess.run([sys.executable, os.path.join(ROOT, 'experiments', 'benchmark.py'),
                    '--config', os.path.join(ROOT, 'experiments', 'bench_nanogpt_cpu.py'),
                    '--config.mesh.data=1', f'--config.model.num_layers={layers}',
                    f'--config.model.num_heads={heads}', f'--config.model.d_model={d}',
                    f'--config.model.max_len={seq}', f'--config.data.seq_len={seq}',
                    f'--config.train.global_batch_size={batch}',
                    f'--config.model.vocab_size={VOCAB}', '--steps', str(steps),
                    '--warmup', str(warmup), '--out', out.name],
                   check=True, env=_env(), cwd=ROOT, capture_output=True, text=True)
    return json.loads(open(out.name).read().splitlines()[-1])['tokens_per_s']


def torch_tokens_per_s(shape, steps: int, warmup: int) -> float:
  layers, heads, d, seq, batch = shape
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'torch_ref', 'time_steps.py'),
       '--layers', str(layers), '--heads', str(heads), '--d-model', str(d), '--seq-len',
       str(seq), '--batch', str(batch), '--vocab', str(VOCAB), '--steps', str(steps),
       '--warmup', str(warmup)], check=True, env=_env(), cwd=ROOT, capture_output=True,
      text=True)
  return json.loads(done.stdout.splitlines()[-1])['tokens_per_s']


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--rounds', type=int, default=5)
  p.add_argument('--steps', type=int, default=20)
  p.add_argument('--warmup', type=int, default=3)
  p.add_argument('--out', default='', help='also write the Markdown table here')
  p.add_argument('--shapes', default='baby,nanogpt',
                 help='comma-separated first words of the shapes to run: baby, nanogpt')
  a = p.parse_args()
  chosen = a.shapes.split(',')
  unknown = set(chosen) - {name.split()[0] for name in SHAPES}
  if unknown:
    p.error(f'--shapes {a.shapes!r}: unknown {sorted(unknown)}; choose from baby, nanogpt')
  lines = [f'Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {platform.node()} '
           f'({os.cpu_count()} cores), {a.rounds} rounds x {a.steps} timed steps.', '',
           '| shape | lm_jax tokens/s | PyTorch tokens/s | lm_jax / PyTorch: median [min, max] |',
           '|---|---:|---:|---|']
  for name, shape in SHAPES.items():
    if name.split()[0] not in chosen:
      continue
    ours, theirs = [], []
    for r in range(a.rounds):
      ours.append(lm_jax_tokens_per_s(shape, a.steps, a.warmup))
      theirs.append(torch_tokens_per_s(shape, a.steps, a.warmup))
      print(f'{name} round {r + 1}: lm_jax {ours[-1]:.0f}  torch {theirs[-1]:.0f} tokens/s',
            flush=True)
    ratios = [o / t for o, t in zip(ours, theirs)]
    lines.append(f'| {name} | {statistics.median(ours):,.0f} | {statistics.median(theirs):,.0f} '
                 f'| {statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}] |')
  print('\n'.join(lines))
  if a.out:
    with open(a.out, 'w') as f:
      f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
  main()
