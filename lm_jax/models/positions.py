"""Rotary position embeddings (RoPE, Su et al. 2021)."""

import jax.numpy as jnp


def apply_rope(x_BxLxNxH: jnp.ndarray, positions_BxL: jnp.ndarray,
               theta: float) -> jnp.ndarray:
  """Rotates pairs (i, i + H/2) of each head by position-dependent angles."""
  head_dim = x_BxLxNxH.shape[-1]
  half = head_dim // 2
  freqs_F = 1.0 / (theta ** (jnp.arange(half, dtype=jnp.float32) / half))
  angles_BxLxF = positions_BxL[..., None].astype(jnp.float32) * freqs_F
  sin = jnp.sin(angles_BxLxF)[:, :, None, :]
  cos = jnp.cos(angles_BxLxF)[:, :, None, :]
  x1, x2 = jnp.split(x_BxLxNxH.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return rotated.astype(x_BxLxNxH.dtype)
