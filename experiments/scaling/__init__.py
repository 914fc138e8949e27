"""Compute-optimal allocation (Hoffmann et al. 2022): the model ladder and the two fitters.

  laws.py       L(N, D) = E + A / N^alpha + B / D^beta, its compute-optimal frontier,
                published parameter sets, synthetic IsoFLOP data
  approach2.py  IsoFLOP profiles: a parabola in log N per budget, power laws across budgets
  approach3.py  the parametric fit: Huber on log-loss, L-BFGS from a grid of starts
  ladder.py     the model ladder x compute budgets, FLOPs per run, emitted as a sweep
  plots.py      IsoFLOP curves with their parabolas, the fitted frontier, residuals
  fit_scaling.py  the command line (synthetic data or a collected ladder sweep)
"""
