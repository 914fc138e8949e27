"""Compares a shakespeare_char run's final validation loss with nanoGPT's published one.

    python experiments/repro/shakespeare_char/check.py RUN_DIR [--variant cpu|gpu] [--tolerance 0.02]

Prints PASS or FAIL, the gap and where the numbers come from; exits 0 on PASS, 1 on FAIL.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))

from experiments.repro.shakespeare_char.config import PUBLISHED  # noqa: E402
from lm_jax.metrics.writers import read_jsonl  # noqa: E402


def final_eval_loss(run_dir: str, step: int) -> float | None:
  """eval/loss logged at `step` in RUN_DIR/metrics.jsonl (the last such line), or None."""
  losses = [r['eval/loss'] for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
            if r.get('step') == step and 'eval/loss' in r]
  return losses[-1] if losses else None


def check(run_dir: str, variant: str, tolerance: float) -> bool:
  """Prints the verdict; True when |ours - published| <= tolerance."""
  steps, published = PUBLISHED[variant]
  ours = final_eval_loss(run_dir, steps)
  if ours is None:
    print(f'FAIL: no eval/loss at step {steps} in {run_dir}/metrics.jsonl (did the run finish?)')
    return False
  gap = ours - published
  verdict = 'PASS' if abs(gap) <= tolerance else 'FAIL'
  print(f'{verdict}: val loss {ours:.4f} at step {steps}, nanoGPT publishes {published} '
        f'({variant} recipe); gap {gap:+.4f} (tolerance {tolerance})')
  return verdict == 'PASS'


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('run_dir')
  parser.add_argument('--variant', choices=sorted(PUBLISHED), default='cpu')
  parser.add_argument('--tolerance', type=float, default=0.02)
  args = parser.parse_args()
  sys.exit(0 if check(args.run_dir, args.variant, args.tolerance) else 1)


if __name__ == '__main__':
  main()
