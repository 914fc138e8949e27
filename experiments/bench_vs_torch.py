"""lm_jax against PyTorch (eager, CPU) on the same GPT and batch, A B A B in one run.

    python experiments/bench_vs_torch.py [--rounds 40] [--steps N] [--shapes baby,nanogpt]
        [--nanogpt PATH] [--aa] [--out docs/bench_vs_torch.md]

Two shapes (issue 11): nanoGPT's shakespeare-char "baby" GPT (4 layers, 4 heads,
d_model 128, context 64, batch 12) and the 6 x 384 model at context 256, batch 8
(experiments/bench_nanogpt_cpu.py). Both sides: vocabulary 65, pre-LN, LayerNorm
without bias, learned positions, GELU (tanh), no biases, tied embeddings, fp32,
AdamW with clipping; PyTorch's model is experiments/torch_ref/gpt.py, or with
--nanogpt PATH a nanoGPT checkout's own model.py (torch_ref/nanogpt_checkout.py). lm_jax's step
is experiments/benchmark.py's (the step `lm-jax train` runs, on random batches
already on the device).

Lockstep: both steps are built and warmed up in their own processes
(experiments/step_server.py), so neither framework's threads or caches meet the
other's; then each round times one window of --steps steps of each, the order
alternating (A B, B A, ...). The ratio is taken within each round, from two
windows measured a second or two apart, so the drift of a shared machine
cancels. lm_jax's window runs its steps back to back and waits once, as
`lm-jax train` does between log steps; PyTorch eager is synchronous either way.
`--steps 1` compares single-step latency instead. Prints per shape the tokens/s
of each side (median over rounds) and lm_jax / PyTorch as median, quartiles and
[min, max] over rounds.
"""

import argparse
import datetime
import functools
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments.step_server import StepServer  # noqa: E402

SHAPES = {  # name: (layers, heads, d_model, seq_len, batch), steps per window
    'baby 4x128 ctx64 b12': ((4, 4, 128, 64, 12), 10),
    'nanogpt 6x384 ctx256 b8': ((6, 6, 384, 256, 8), 2),
}
VOCAB = 65
PAUSE_S = 0.05  # before each window


def _env():
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  env.pop('XLA_FLAGS', None)  # one CPU device
  return env


def lm_jax_server(shape, warmup: int) -> StepServer:
  layers, heads, d, seq, batch = shape
  return StepServer(
      [sys.executable, os.path.join(ROOT, 'experiments', 'benchmark.py'),
       '--config', os.path.join(ROOT, 'experiments', 'bench_nanogpt_cpu.py'),
       '--config.mesh.data=1', f'--config.model.num_layers={layers}',
       f'--config.model.num_heads={heads}', f'--config.model.d_model={d}',
       f'--config.model.max_len={seq}', f'--config.data.seq_len={seq}',
       f'--config.train.global_batch_size={batch}', f'--config.model.vocab_size={VOCAB}',
       '--warmup', str(warmup), '--serve'], env=_env(), cwd=ROOT)


def torch_server(shape, warmup: int, nanogpt: str = '') -> StepServer:
  layers, heads, d, seq, batch = shape
  return StepServer(
      [sys.executable, os.path.join(ROOT, 'experiments', 'torch_ref', 'time_steps.py'),
       '--layers', str(layers), '--heads', str(heads), '--d-model', str(d), '--seq-len',
       str(seq), '--batch', str(batch), '--vocab', str(VOCAB), '--warmup', str(warmup),
       '--serve'] + (['--nanogpt', nanogpt] if nanogpt else []), env=_env(), cwd=ROOT)


def lockstep(ours: StepServer, theirs: StepServer, rounds: int, steps: int, name: str):
  """Per round, seconds for `steps` steps of each, the order alternating."""
  ours_s, theirs_s = [], []

  def timed(server):
    time.sleep(PAUSE_S)  # the other process's threads stop spinning and sleep
    return server.time(steps)

  for r in range(rounds):
    if r % 2 == 0:
      ours_s.append(timed(ours))
      theirs_s.append(timed(theirs))
    else:
      theirs_s.append(timed(theirs))
      ours_s.append(timed(ours))
    print(f'{name} round {r + 1}: lm_jax {1e3 * ours_s[-1] / steps:.1f} ms/step  '
          f'torch {1e3 * theirs_s[-1] / steps:.1f} ms/step  '
          f'ratio {theirs_s[-1] / ours_s[-1]:.3f}', flush=True)
  return ours_s, theirs_s


def table_row(name: str, tokens_per_step: int, steps: int, ours_s, theirs_s) -> str:
  ratios = sorted(t / o for o, t in zip(ours_s, theirs_s))  # > 1: lm_jax faster
  q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
  ours_tps = statistics.median(tokens_per_step * steps / s for s in ours_s)
  theirs_tps = statistics.median(tokens_per_step * steps / s for s in theirs_s)
  return (f'| {name} | {steps} | {ours_tps:,.0f} | {theirs_tps:,.0f} | '
          f'**{statistics.median(ratios):.2f}** | {q1:.2f}-{q3:.2f} | '
          f'[{ratios[0]:.2f}, {ratios[-1]:.2f}] |')


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--rounds', type=int, default=40)
  p.add_argument('--steps', type=int, default=0,
                 help='steps per window (0: 10 on the baby shape, 2 on the 6 x 384 one)')
  p.add_argument('--warmup', type=int, default=3)
  p.add_argument('--out', default='', help='also write the Markdown table here')
  p.add_argument('--nanogpt', default='', metavar='PATH',
                 help="a nanoGPT checkout: PyTorch's side is its model.py "
                      '(experiments/torch_ref/nanogpt_checkout.py) instead of torch_ref/gpt.py')
  p.add_argument('--aa', action='store_true',
                 help='also run lm_jax against lm_jax and PyTorch against PyTorch, the same '
                      'way: how far from 1.00 the noise of the host moves a ratio')
  p.add_argument('--shapes', default='baby,nanogpt',
                 help='comma-separated first words of the shapes to run: baby, nanogpt')
  a = p.parse_args()
  chosen = a.shapes.split(',')
  unknown = set(chosen) - {name.split()[0] for name in SHAPES}
  if unknown:
    p.error(f'--shapes {a.shapes!r}: unknown {sorted(unknown)}; choose from baby, nanogpt')
  if a.rounds < 1 or a.steps < 0:
    p.error('--rounds must be >= 1 and --steps >= 0')
  if a.nanogpt and not os.path.isfile(os.path.join(a.nanogpt, 'model.py')):
    p.error(f'--nanogpt {a.nanogpt}: no model.py there; pass the directory of a nanoGPT checkout')
  theirs_server = functools.partial(torch_server, nanogpt=a.nanogpt)
  theirs_name = 'nanoGPT' if a.nanogpt else 'PyTorch'
  lines = [f'Measured {datetime.datetime.now():%Y-%m-%d %H:%M} on {platform.node()} '
           f'({os.cpu_count()} cores), lockstep, {a.rounds} rounds.', '',
           '| shape | steps per window | lm_jax tokens/s | PyTorch tokens/s '
           '| lm_jax / PyTorch (median) | quartiles | [min, max] |',
           '|---|---:|---:|---:|---:|---|---|']
  for name, (shape, default_steps) in SHAPES.items():
    if name.split()[0] not in chosen:
      continue
    steps = a.steps or default_steps
    pairs = [(f' (vs {theirs_name})' if a.nanogpt else '', lm_jax_server, theirs_server)]
    if a.aa:
      pairs += [(' (A/A: lm_jax / lm_jax)', lm_jax_server, lm_jax_server),
                (f' (A/A: {theirs_name} / {theirs_name})', theirs_server, theirs_server)]
    for suffix, first, second in pairs:
      ours = first(shape, a.warmup)
      try:
        theirs = second(shape, a.warmup)
        try:
          ours_s, theirs_s = lockstep(ours, theirs, a.rounds, steps, name + suffix)
        finally:
          theirs.close()
      finally:
        ours.close()
      lines.append(table_row(name + suffix, shape[3] * shape[4], steps, ours_s, theirs_s))
  print('\n'.join(lines))
  if a.out:
    with open(a.out, 'w') as f:
      f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
  main()
