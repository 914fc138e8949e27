#!/usr/bin/env python3
"""Fit compute-optimal scaling (Approaches 2 and 3) to synthetic data or to the ladder sweep.

  python experiments/scaling/fit_scaling.py --synthetic chinchilla --noise 0.002 --out runs/fit
  python experiments/scaling/fit_scaling.py --ladder runs --out runs/scaling_ladder/fit
  python experiments/scaling/fit_scaling.py --ladder runs --budgets 1e12,3e12,1e13 \
      --with-points docs/scaling_cpu/first_ladder_points.json --out docs/scaling_cpu

Prints the fitted law, N_opt(C), D_opt(C) and tokens per parameter at each
budget from both approaches, and writes isoflops.png, frontier.png,
residuals.png and fit.json to --out. Approach 3's frontier assumes C = 6ND
(as Hoffmann et al.); the ladder's budgets are the project's FLOP count (see
ladder.py for how the two compare).
"""

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from experiments.scaling import plots  # noqa: E402
from experiments.scaling.approach2 import fit_approach2  # noqa: E402
from experiments.scaling.approach3 import HOFFMANN_GRID, fit_approach3  # noqa: E402
from experiments.scaling.laws import PUBLISHED, synthetic_points  # noqa: E402
from experiments.scaling.points import ladder_points, merge_points, recorded_points  # noqa: E402


def frontier_table(fit2, law3, budgets) -> str:
  """Markdown: N_opt, D_opt and D/N at each budget, from Approach 2 and Approach 3."""
  lines = ['| C | N_opt (A2) | D_opt (A2) | D/N (A2) | N_opt (A3) | D_opt (A3) | D/N (A3) |',
           '|---|---|---|---|---|---|---|']
  for c in budgets:
    n2, d2, n3, d3 = fit2.n_opt(c), fit2.d_opt(c), law3.n_opt(c), law3.d_opt(c)
    lines.append(f'| {c:.2e} | {n2:.3e} | {d2:.3e} | {d2 / n2:.1f} | {n3:.3e} | {d3:.3e} | '
                 f'{d3 / n3:.1f} |')
  return '\n'.join(lines)


def main(argv=None) -> int:
  """Entry point."""
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  source = p.add_mutually_exclusive_group(required=True)
  source.add_argument('--synthetic', choices=sorted(PUBLISHED), help='published law to sample')
  source.add_argument('--ladder', metavar='ROOT', help='root of the scaling_ladder sweep')
  p.add_argument('--budgets', default=None,
                 help='ladder: comma-separated budgets that were run (default: all of ladder.py)')
  p.add_argument('--with-points', metavar='JSON', default=None,
                 help='ladder: also fit these recorded points (runs whose directories are gone); '
                      'a finished run with the same N, D, C replaces its recorded point')
  p.add_argument('--noise', type=float, default=0.002, help='synthetic: std of log-loss noise')
  p.add_argument('--seed', type=int, default=0, help='synthetic: noise seed')
  p.add_argument('--hoffmann-grid', action='store_true',
                 help="Approach 3 from Hoffmann et al.'s 4500 starts (default: 243)")
  p.add_argument('--out', required=True, help='directory for the plots and fit.json')
  args = p.parse_args(argv)

  truth = PUBLISHED.get(args.synthetic)
  if truth is not None:
    points = synthetic_points(truth, args.noise, args.seed)
  else:
    budgets = {} if args.budgets is None else {
        'budgets': tuple(float(b) for b in args.budgets.split(','))}
    points, missing = ladder_points(args.ladder, **budgets)
    if missing:
      print(f'{len(missing)} ladder runs have no eval/loss here'
            + (' (recorded points stand in for those they hold)' if args.with_points else '')
            + f': {", ".join(missing)}')
    if args.with_points:
      points, both = merge_points(points, recorded_points(args.with_points))
      for n, d, c, was, now in both:
        print(f'rerun of a recorded point (N={n:.0f}, D={d:.0f}, C={c:.0e}): loss {now:.4f}, '
              f'recorded {was:.4f} ({now - was:+.4f})')
  fit2 = fit_approach2(points)
  fit3 = fit_approach3(points, grid=HOFFMANN_GRID if args.hoffmann_grid else None)
  budgets = [p.c for p in fit2.profiles]
  law = fit3.law
  print(f'Approach 3: E={law.E:.4f} A={law.A:.2f} B={law.B:.2f} alpha={law.alpha:.4f} '
        f'beta={law.beta:.4f}  (a = beta/(alpha+beta) = {law.a:.4f}; objective '
        f'{fit3.objective:.4g}, reached from {fit3.starts} starts)')
  print(f'Approach 2: N_opt ~ C^{fit2.a:.4f}, D_opt ~ C^{fit2.b:.4f}')
  for c, why in fit2.skipped:
    print(f'  budget {c:.2e} left out of Approach 2: {why}')
  if truth is not None:
    print(f'truth:      E={truth.E} A={truth.A} B={truth.B} alpha={truth.alpha} beta={truth.beta}'
          f'  (a = {truth.a:.4f})')
  print(frontier_table(fit2, law, budgets))
  os.makedirs(args.out, exist_ok=True)
  plots.plot_isoflops(fit2, os.path.join(args.out, 'isoflops.png'))
  plots.plot_frontier(fit2, law, os.path.join(args.out, 'frontier.png'), truth)
  plots.plot_residuals(law, points, os.path.join(args.out, 'residuals.png'))
  record = {'approach3': dataclasses.asdict(law), 'approach2': {
      'a': fit2.a, 'k_n': fit2.k_n, 'b': fit2.b, 'k_d': fit2.k_d,
      'minima': [{'c': p.c, 'n_opt': p.n_opt, 'd_opt': p.d_opt} for p in fit2.profiles]},
            'points': {k: np.asarray(v).tolist() for k, v in dataclasses.asdict(points).items()}}
  with open(os.path.join(args.out, 'fit.json'), 'w') as f:
    json.dump(record, f, indent=1)
  print(f'plots and fit.json in {args.out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
