"""Times the PyTorch GPT's train step; prints one JSON line.

    python experiments/torch_ref/time_steps.py --layers 4 --heads 4 --d-model 128 \
        --seq-len 64 --batch 12 --vocab 65 --steps 20 --warmup 3 [--serve] [--nanogpt PATH]

--serve: after the warmup, time windows of steps asked for on stdin
(experiments/step_server.py; bench_vs_torch.py runs it beside lm_jax's step).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from experiments.step_server import serve  # noqa: E402
from experiments.torch_ref import nanogpt_checkout  # noqa: E402
from experiments.torch_ref.gpt import GPTShape, make_train_step  # noqa: E402


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  for name in ('layers', 'heads', 'd-model', 'seq-len', 'batch', 'vocab'):
    p.add_argument(f'--{name}', type=int, required=True)
  p.add_argument('--steps', type=int, default=20)
  p.add_argument('--warmup', type=int, default=3)
  p.add_argument('--serve', action='store_true', help='time windows asked for on stdin')
  p.add_argument('--nanogpt', default='',
                 help="a nanoGPT checkout: time its model.py's GPT instead of gpt.py's")
  a = p.parse_args()
  shape = GPTShape(a.layers, a.heads, a.d_model, a.seq_len, a.batch, a.vocab)
  if a.nanogpt:
    _, step = nanogpt_checkout.make_train_step(shape, a.nanogpt)
  else:
    _, step = make_train_step(shape)
  rng = np.random.default_rng(0)
  windows = [torch.from_numpy(rng.integers(0, a.vocab, (a.batch, a.seq_len + 1)))
             for _ in range(4)]
  batches = [(w[:, :-1].contiguous(), w[:, 1:].contiguous()) for w in windows]
  for i in range(a.warmup):
    step(*batches[i % 4])
  if a.serve:
    calls = [a.warmup]

    def run_steps(n: int) -> None:
      for _ in range(n):  # each step ends in loss.item(): eager CPU is synchronous anyway
        step(*batches[calls[0] % 4])
        calls[0] += 1

    serve(run_steps, {'threads': torch.get_num_threads(), 'torch': torch.__version__})
    return
  times = []
  for i in range(a.steps):
    start = time.perf_counter()
    loss = step(*batches[i % 4])
    times.append(time.perf_counter() - start)
  median = float(np.median(times))
  print(json.dumps({'step_ms_median': 1e3 * median, 'tokens_per_s': a.batch * a.seq_len / median,
                    'loss': loss, 'threads': torch.get_num_threads(),
                    'torch': torch.__version__}))


if __name__ == '__main__':
  main()
