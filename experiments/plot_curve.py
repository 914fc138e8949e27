"""Plots a run's loss curve from its metrics.jsonl (needs matplotlib).

    python experiments/plot_curve.py runs/shakespeare_char --out docs/shakespeare_char_curve.png \
        --reference 1.88 --reference-label "nanoGPT val 1.88"
"""

import argparse
import os

from lm_jax.metrics.writers import read_jsonl


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('run_dir')
  parser.add_argument('--out', required=True, help='PNG path')
  parser.add_argument('--reference', type=float, default=None,
                      help='a published loss to draw as a horizontal line')
  parser.add_argument('--reference-label', default='reference')
  args = parser.parse_args()

  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  rows = read_jsonl(os.path.join(args.run_dir, 'metrics.jsonl'))
  train = sorted((r['step'], r['train/loss']) for r in rows if 'train/loss' in r)
  evals = sorted((r['step'], r['eval/loss']) for r in rows if 'eval/loss' in r)
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  ax.plot(*zip(*train), lw=0.8, alpha=0.6, label='train loss (one batch per point)')
  ax.plot(*zip(*evals), 'o-', label='validation loss')
  if args.reference is not None:
    ax.axhline(args.reference, color='gray', ls='--', label=args.reference_label)
  ax.set_xlabel('step')
  ax.set_ylabel('loss (nats/token)')
  ax.set_ylim(top=min(4.5, max(l for _, l in train)))
  ax.grid(alpha=0.3)
  ax.legend()
  ax.set_title(os.path.basename(os.path.normpath(args.run_dir)))
  fig.tight_layout()
  fig.savefig(args.out)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
