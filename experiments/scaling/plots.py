"""Plots of a compute-optimal fit: IsoFLOP profiles, the frontier, Approach 3's residuals."""

import numpy as np

from experiments.scaling.approach2 import Fit2
from experiments.scaling.approach3 import residuals
from experiments.scaling.laws import LossLaw, Points


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_isoflops(fit: Fit2, path: str) -> None:
  """Loss against N per budget (dots), its parabola in log N (line) and minimum (star)."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(7, 4.5))
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(fit.profiles)))
  for profile, color in zip(fit.profiles, colors):
    x = np.linspace(profile.log_n.min(), profile.log_n.max(), 100)
    ax.plot(np.exp(profile.log_n), profile.loss, 'o', color=color, markersize=4)
    ax.plot(np.exp(x), np.polyval(profile.coef_n, x), '-', color=color, linewidth=1,
            label=f'C = {profile.c:.1e}')
    ax.plot(profile.n_opt, np.polyval(profile.coef_n, np.log(profile.n_opt)), '*',
            color=color, markersize=10)
  ax.set_xscale('log')
  ax.set_xlabel('parameters N')
  ax.set_ylabel('final loss')
  ax.set_title('IsoFLOP profiles (Approach 2): parabolas in log N, minima starred')
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3, which='both')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_frontier(fit2: Fit2, law3: LossLaw, path: str, truth: LossLaw | None = None) -> None:
  """N_opt(C) and D_opt(C): Approach 2's minima and power laws, Approach 3's (and the true) law."""
  plt = _plt()
  cs = np.array([p.c for p in fit2.profiles])
  grid = np.geomspace(cs.min() / 3, cs.max() * 3, 50)
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, what in zip(axes, ('N', 'D')):
    minima = [p.n_opt if what == 'N' else p.d_opt for p in fit2.profiles]
    exponent = fit2.a if what == 'N' else fit2.b
    ax.plot(cs, minima, 'o', color='C0', label='IsoFLOP minima')
    ax.plot(grid, fit2.n_opt(grid) if what == 'N' else fit2.d_opt(grid), '-', color='C0',
            label=f'Approach 2: C^{exponent:.3f}')
    ax.plot(grid, law3.n_opt(grid) if what == 'N' else law3.d_opt(grid), '--', color='C1',
            label=f'Approach 3: C^{law3.a if what == "N" else law3.b:.3f}')
    if truth is not None:
      ax.plot(grid, truth.n_opt(grid) if what == 'N' else truth.d_opt(grid), ':', color='k',
              label=f'true: C^{truth.a if what == "N" else truth.b:.3f}')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('compute C (FLOPs)')
    ax.set_ylabel(f'{what}_opt')
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which='both')
  fig.suptitle('compute-optimal frontier (Approach 3 with C = 6ND)')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_residuals(law: LossLaw, points: Points, path: str) -> None:
  """Approach 3's log L_fit - log L against N, coloured by budget."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 4))
  budgets = np.unique(points.c)
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(budgets)))
  res = residuals(law, points)
  for budget, color in zip(budgets, colors):
    mask = points.c == budget
    ax.plot(points.n[mask], res[mask], 'o', color=color, markersize=4, label=f'C = {budget:.1e}')
  ax.axhline(0, color='k', linewidth=0.8)
  ax.set_xscale('log')
  ax.set_xlabel('parameters N')
  ax.set_ylabel('log L_fit - log L')
  ax.set_title(f'Approach 3 residuals (rms {np.sqrt(np.mean(res ** 2)):.2e})')
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
