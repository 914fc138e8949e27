"""Hoffmann et al.'s Approach 2: IsoFLOP profiles.

For each compute budget C, fit a parabola to the final loss against log N over
the runs of that budget and take its minimum N_opt(C); likewise against log D
for D_opt(C). Across budgets, fit straight lines in log-log space:
N_opt = k_N C^a and D_opt = k_D C^b (least squares on the logs). A budget whose
parabola opens downwards (noise, or sizes all on one side of the optimum) has
no minimum: it is left out and listed in Fit2.skipped.
"""

import dataclasses

import numpy as np

from experiments.scaling.laws import Points


@dataclasses.dataclass(frozen=True)
class Profile:
  """One budget's IsoFLOP profile: its runs, the two parabolas and their minima."""
  c: float
  log_n: np.ndarray
  log_d: np.ndarray
  loss: np.ndarray
  coef_n: np.ndarray     # loss ~ polyval(coef_n, log N), highest power first
  coef_d: np.ndarray
  n_opt: float
  d_opt: float


@dataclasses.dataclass(frozen=True)
class Fit2:
  """Per-budget profiles and the power laws N_opt = k_n C^a, D_opt = k_d C^b."""
  profiles: list[Profile]
  a: float
  k_n: float
  b: float
  k_d: float
  skipped: list[tuple[float, str]] = dataclasses.field(default_factory=list)  # (C, why)

  def n_opt(self, c):
    return self.k_n * np.power(np.asarray(c, float), self.a)

  def d_opt(self, c):
    return self.k_d * np.power(np.asarray(c, float), self.b)


def parabola_minimum(x: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, float]:
  """The least-squares parabola of loss in x (coefficients, highest first) and its argmin."""
  if len(x) < 3:
    raise ValueError(f'a parabola needs at least 3 runs per budget, got {len(x)}')
  coef = np.polyfit(x, loss, 2)
  if coef[0] <= 0:
    raise ValueError('the IsoFLOP profile is not convex (no minimum): widen the range of '
                     'model sizes around the optimum')
  return coef, float(-coef[1] / (2 * coef[0]))


def isoflop_profiles(points: Points, rtol: float = 1e-6
                     ) -> tuple[list[Profile], list[tuple[float, str]]]:
  """One profile per budget with a minimum (runs whose C agree to rtol), by increasing C;
  and the (C, reason) of the budgets without one."""
  profiles, skipped, seen = [], [], []
  for c in np.unique(points.c):
    if seen and abs(c - seen[-1]) <= rtol * c:
      continue
    seen.append(c)
    mask = np.abs(points.c - c) <= rtol * c
    log_n, log_d, loss = np.log(points.n[mask]), np.log(points.d[mask]), points.loss[mask]
    try:
      coef_n, x_n = parabola_minimum(log_n, loss)
      coef_d, x_d = parabola_minimum(log_d, loss)
    except ValueError as e:
      skipped.append((float(c), str(e)))
      continue
    profiles.append(Profile(c=float(c), log_n=log_n, log_d=log_d, loss=loss, coef_n=coef_n,
                            coef_d=coef_d, n_opt=float(np.exp(x_n)), d_opt=float(np.exp(x_d))))
  return profiles, skipped


def fit_approach2(points: Points) -> Fit2:
  """IsoFLOP minima per budget, then N_opt ~ C^a and D_opt ~ C^b across the budgets."""
  profiles, skipped = isoflop_profiles(points)
  if len(profiles) < 2:
    raise ValueError(f'power laws across budgets need at least 2 budgets with a minimum, got '
                     f'{len(profiles)}; skipped: {skipped}')
  log_c = np.log([p.c for p in profiles])
  a, log_kn = np.polyfit(log_c, np.log([p.n_opt for p in profiles]), 1)
  b, log_kd = np.polyfit(log_c, np.log([p.d_opt for p in profiles]), 1)
  return Fit2(profiles=profiles, a=float(a), k_n=float(np.exp(log_kn)), b=float(b),
              k_d=float(np.exp(log_kd)), skipped=skipped)
