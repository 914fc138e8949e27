"""Model FLOPs utilisation. Each family counts its own FLOPs per token
(lm_jax/models/<family>/flops.py, reached through the family registry)."""


def mfu(tokens_per_second: float, flops_per_token_train: float,
        peak_flops_total: float) -> float:
  """Model FLOPs utilisation: achieved train FLOP/s over the peak of all devices used."""
  if peak_flops_total <= 0:
    return float('nan')
  return tokens_per_second * flops_per_token_train / peak_flops_total
