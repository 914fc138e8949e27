#!/usr/bin/env python3
"""Where Approach 2 (IsoFLOP parabolas) is biased: measured on synthetic data from published laws.

  python experiments/scaling/approach2_bias.py [--seeds 200]

Prints Markdown tables (docs/scaling.md quotes them):
  1. noiseless, model sizes centred on the true optimum, by span of the sizes:
     the error of the exponent a and of the level N_opt(C) / N_true(C);
  2. noiseless, a fixed ladder of model sizes (the same sizes at every budget,
     as a real ladder has), by spacing: the error of a;
  3. noiseless, sizes centred on a wrong guess of the optimum, one whose
     exponent is off by `shift`: the error of a;
  4. noisy losses, centred design: mean (bias) and standard deviation of the
     error of a over --seeds seeds, and the same for Approach 3's a.
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from experiments.scaling.approach2 import fit_approach2  # noqa: E402
from experiments.scaling.approach3 import fit_approach3  # noqa: E402
from experiments.scaling.laws import (CHINCHILLA_BUDGETS, PUBLISHED, LossLaw, Points,  # noqa: E402
                                      synthetic_points)

PER_BUDGET = 9


def _points(law: LossLaw, n: np.ndarray, c: np.ndarray, noise: float = 0.0,
            seed: int = 0) -> Points:
  d = c / (6 * n)
  rng = np.random.default_rng(seed)
  return Points(n=n, d=d, c=c, loss=law.loss(n, d) * np.exp(noise * rng.standard_normal(n.shape)))


def _geometric_mean_budget() -> float:
  return math.exp(np.mean(np.log(CHINCHILLA_BUDGETS)))


def shifted_design(law: LossLaw, span: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
  """Sizes centred on N_opt(C) (C / C_mid)^shift: a guessed exponent that is off by `shift`."""
  n, c = [], []
  for budget in CHINCHILLA_BUDGETS:
    centre = (math.log(float(law.n_opt(budget)))
              + shift * math.log(budget / _geometric_mean_budget()))
    n.extend(np.exp(np.linspace(centre - math.log(span) / 2, centre + math.log(span) / 2,
                                PER_BUDGET)))
    c.extend([budget] * PER_BUDGET)
  return np.asarray(n), np.asarray(c)


def ladder_design(law: LossLaw, spacing: float, span: float,
                  margin: float | None = None) -> tuple[np.ndarray, np.ndarray]:
  """A fixed ladder N_k = N_0 spacing^k; each budget takes the rungs within span of its optimum.

  The ladder runs from N_opt(smallest budget) / margin to N_opt(largest) * margin
  (default sqrt(span): no budget lacks a rung); a smaller margin cuts the
  profiles of the extreme budgets on their outer side, as a ladder that is too
  short does.
  """
  margin = math.sqrt(span) if margin is None else margin
  low = float(law.n_opt(CHINCHILLA_BUDGETS[0])) / margin
  high = float(law.n_opt(CHINCHILLA_BUDGETS[-1])) * margin * (1 + 1e-9)
  ladder = low * spacing ** np.arange(200)
  ladder = ladder[ladder <= high]
  n, c = [], []
  for budget in CHINCHILLA_BUDGETS:
    opt = float(law.n_opt(budget))
    keep = ladder[np.abs(np.log(ladder / opt)) <= math.log(span) / 2 + 1e-9]
    n.extend(keep)
    c.extend([budget] * len(keep))
  return np.asarray(n), np.asarray(c)


def table_span(law: LossLaw) -> list[str]:
  rows = ['| span of N per budget | a - a_true | N_opt / N_true |', '|---|---|---|']
  for span in (4, 16, 64, 256):
    n, c = shifted_design(law, span, 0.0)
    fit = fit_approach2(_points(law, n, c))
    level = fit.profiles[0].n_opt / float(law.n_opt(fit.profiles[0].c))
    rows.append(f'| {span}x | {fit.a - law.a:+.5f} | {level:.3f} |')
  return rows


def table_ladder(law: LossLaw) -> list[str]:
  rows = ['| ladder spacing (span 16x) | ladder ends beyond the extreme optima | runs per budget '
          '| a - a_true |', '|---|---|---|---|']
  for spacing, margin in ((2.0, None), (math.sqrt(2), None), (2 ** 0.25, None),
                          (math.sqrt(2), 2.0), (math.sqrt(2), 1.0)):
    n, c = ladder_design(law, spacing, 16.0, margin)
    fit = fit_approach2(_points(law, n, c))
    counts = [int(np.sum(c == b)) for b in CHINCHILLA_BUDGETS]
    rows.append(f'| {spacing:.3f}x | {margin or 4.0:g}x | {min(counts)}-{max(counts)} | '
                f'{fit.a - law.a:+.4f} |')
  return rows


def table_shift(law: LossLaw) -> list[str]:
  rows = ['| centre exponent off by (span 16x) | a - a_true |', '|---|---|']
  for shift in (-0.2, -0.1, 0.1, 0.2):
    n, c = shifted_design(law, 16.0, shift)
    rows.append(f'| {shift:+.1f} | {fit_approach2(_points(law, n, c)).a - law.a:+.4f} |')
  return rows


def table_noise(law: LossLaw, seeds: int, seeds3: int) -> list[str]:
  rows = ['| noise (std of log L) | A2: mean of a - a_true (its s.e.) | A2: std | A2: seeds with a '
          'budget lacking a minimum | A3: mean | A3: std |', '|---|---|---|---|---|---|']
  for noise in (0.002, 0.005, 0.01):
    fits = [fit_approach2(synthetic_points(law, noise, s)) for s in range(seeds)]
    err2 = np.array([f.a - law.a for f in fits])
    err3 = [fit_approach3(synthetic_points(law, noise, s)).law.a - law.a for s in range(seeds3)]
    a3 = f'{np.mean(err3):+.4f} | {np.std(err3):.4f}' if err3 else '- | -'
    rows.append(f'| {noise} | {err2.mean():+.4f} ({err2.std() / math.sqrt(seeds):.4f}) | '
                f'{err2.std():.4f} | {sum(bool(f.skipped) for f in fits)} of {seeds} | {a3} |')
  return rows


def main(argv=None) -> None:
  """Prints the four tables for both published laws."""
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--seeds', type=int, default=200, help='noise seeds per noise level')
  p.add_argument('--approach3-seeds', type=int, default=50,
                 help='seeds for Approach 3 in table 4 (0: leave it out)')
  args = p.parse_args(argv)
  for name, law in PUBLISHED.items():
    print(f'\n## {name}: a_true = beta / (alpha + beta) = {law.a:.4f}\n')
    for rows in (table_span(law), table_ladder(law), table_shift(law)):
      print('\n'.join(rows) + '\n')
    print(f'noise, centred design, span 16x, {PER_BUDGET} sizes x 9 budgets; A2 over '
          f'{args.seeds} seeds, A3 over {args.approach3_seeds}:\n')
    print('\n'.join(table_noise(law, args.seeds, args.approach3_seeds)) + '\n', flush=True)


if __name__ == '__main__':
  main()
