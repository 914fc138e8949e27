"""The parametric loss L(N, D) = E + A / N^alpha + B / D^beta and its compute-optimal frontier.

With compute C = 6 N D (Hoffmann et al. 2022, eq. 4 and appendix D.2), the loss
at fixed C is smallest at

    N_opt(C) = G (C / 6)^a,   D_opt(C) = (C / 6)^b / G,
    G = (alpha A / (beta B))^(1 / (alpha + beta)),  a = beta / (alpha + beta),  b = 1 - a.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class LossLaw:
  """L(N, D) = E + A / N^alpha + B / D^beta (N parameters, D training tokens)."""
  E: float
  A: float
  B: float
  alpha: float
  beta: float

  def loss(self, n, d):
    """The loss of N parameters trained on D tokens (NumPy broadcasting)."""
    return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

  @property
  def a(self) -> float:
    """The exponent of N_opt ~ C^a."""
    return self.beta / (self.alpha + self.beta)

  @property
  def b(self) -> float:
    """The exponent of D_opt ~ C^b."""
    return self.alpha / (self.alpha + self.beta)

  @property
  def G(self) -> float:  # pylint: disable=invalid-name
    return (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))

  def n_opt(self, c):
    """The compute-optimal parameter count at C = 6 N D FLOPs."""
    return self.G * np.power(np.asarray(c, float) / 6, self.a)

  def d_opt(self, c):
    """The compute-optimal token count at C = 6 N D FLOPs."""
    return np.power(np.asarray(c, float) / 6, self.b) / self.G


# Hoffmann et al. (2022), eq. 10; Besiroglu et al. (2024), "Chinchilla scaling: a
# replication attempt", eq. 4.
CHINCHILLA = LossLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
BESIROGLU = LossLaw(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
PUBLISHED = {'chinchilla': CHINCHILLA, 'besiroglu': BESIROGLU}

# Hoffmann et al.'s nine IsoFLOP budgets (figure 3).
CHINCHILLA_BUDGETS = (6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21)


@dataclasses.dataclass(frozen=True)
class Points:
  """Training runs: parameters N, tokens D, compute C, final loss L (arrays of one length)."""
  n: np.ndarray
  d: np.ndarray
  c: np.ndarray
  loss: np.ndarray


def isoflop_design(law: LossLaw, budgets=CHINCHILLA_BUDGETS, per_budget: int = 9,
                   span: float = 16.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(N, D, C) of IsoFLOP profiles: per budget, `per_budget` model sizes log-spaced from
  N_opt / sqrt(span) to N_opt * sqrt(span) around the law's optimum, D = C / (6 N)."""
  n, c = [], []
  for budget in budgets:
    centre = math.log(float(law.n_opt(budget)))
    half = math.log(span) / 2
    n.extend(np.exp(np.linspace(centre - half, centre + half, per_budget)))
    c.extend([budget] * per_budget)
  n, c = np.asarray(n), np.asarray(c)
  return n, c / (6 * n), c


def synthetic_points(law: LossLaw, noise: float, seed: int, **design) -> Points:
  """IsoFLOP runs whose losses follow `law`, times exp(noise * standard normal)."""
  n, d, c = isoflop_design(law, **design)
  rng = np.random.default_rng(seed)
  loss = law.loss(n, d) * np.exp(noise * rng.standard_normal(n.shape))
  return Points(n=n, d=d, c=c, loss=loss)
