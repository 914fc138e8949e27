"""Next-token samplers: greedy, temperature, top-k, top-p (nucleus), min-p, repetition penalty.

Each row samples with its own key, so a row's tokens do not depend on which
other rows share its batch (the decode loop derives the keys from the seed and
a row id). The filters apply in Hugging Face's order, each to the distribution
the previous one left (renormalized): repetition penalty, temperature, top-k,
top-p, min-p. Temperature 0 is greedy (argmax after the penalty).
"""

import dataclasses

import jax
import jax.numpy as jnp

from lm_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SampleConfig:
  """How the next token is chosen from the logits (config section `sample`)."""
  temperature: float = 1.0        # 0: greedy
  top_k: int = 0                  # 0: off; else only the k most likely tokens
  top_p: float = 1.0              # 1: off; else the smallest set with mass >= top_p
  min_p: float = 0.0              # 0: off; else tokens with p >= min_p * max p
  repetition_penalty: float = 1.0  # 1: off; > 1 discourages tokens already in the row

  def __post_init__(self):
    checks = (('temperature', self.temperature >= 0, '>= 0 (0: greedy)'),
              ('top_k', self.top_k >= 0, '>= 0 (0: off)'),
              ('top_p', 0 < self.top_p <= 1, 'in (0, 1] (1: off)'),
              ('min_p', 0 <= self.min_p < 1, 'in [0, 1) (0: off)'),
              ('repetition_penalty', self.repetition_penalty > 0, '> 0 (1: off)'))
    for key, ok, valid in checks:
      if not ok:
        raise ConfigError(f'config.sample.{key}={getattr(self, key)!r}: must be {valid}')

  @property
  def greedy(self) -> bool:
    return self.temperature == 0


def penalize_repetition(logits_BxV, seen_BxV, penalty: float):
  """CTRL's repetition penalty: a seen token's logit is divided by `penalty` if > 0, else multiplied."""
  if penalty == 1.0:
    return logits_BxV
  penalized = jnp.where(logits_BxV > 0, logits_BxV / penalty, logits_BxV * penalty)
  return jnp.where(seen_BxV, penalized, logits_BxV)


def filtered_sorted(logits_BxV, cfg: SampleConfig):
  """(logits sorted descending with the filtered-out ones at -inf, their token ids), both [B, V]."""
  order_BxV = jnp.argsort(-logits_BxV, axis=-1)
  sorted_BxV = jnp.take_along_axis(logits_BxV, order_BxV, axis=-1)
  rank_V = jnp.arange(logits_BxV.shape[-1])
  if cfg.top_k:
    sorted_BxV = jnp.where(rank_V < cfg.top_k, sorted_BxV, -jnp.inf)
  if cfg.top_p < 1.0:
    probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
    mass_before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
    # Keeps tokens until the kept mass reaches top_p (the most likely always stays).
    sorted_BxV = jnp.where((mass_before_BxV < cfg.top_p) | (rank_V == 0), sorted_BxV, -jnp.inf)
  if cfg.min_p > 0.0:
    probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
    sorted_BxV = jnp.where(probs_BxV >= cfg.min_p * probs_BxV[:, :1], sorted_BxV, -jnp.inf)
  return sorted_BxV, order_BxV


def sample(keys_B, logits_BxV, seen_BxV, cfg: SampleConfig):
  """The next token of each row [B] int32; keys_B: one PRNG key per row."""
  logits_BxV = penalize_repetition(logits_BxV.astype(jnp.float32), seen_BxV,
                                   cfg.repetition_penalty)
  if cfg.greedy:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  logits_BxV = logits_BxV / cfg.temperature
  if not (cfg.top_k or cfg.top_p < 1.0 or cfg.min_p > 0.0):
    return jax.vmap(jax.random.categorical)(keys_B, logits_BxV).astype(jnp.int32)
  sorted_BxV, order_BxV = filtered_sorted(logits_BxV, cfg)
  rank_B = jax.vmap(jax.random.categorical)(keys_B, sorted_BxV)
  return jnp.take_along_axis(order_BxV, rank_B[:, None], axis=-1)[:, 0].astype(jnp.int32)
