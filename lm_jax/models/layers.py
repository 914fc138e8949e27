"""Building blocks shared by the Transformer families: norms, MLPs, dense maps."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.config import ModelConfig


def dense_init(std: float, axes: tuple[str, ...]):
  """Normal(std) kernel initializer that names the kernel's logical axes."""
  return nn.with_logical_partitioning(nn.initializers.normal(std), axes)


def zeros_init(axes: tuple[str, ...]):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), axes)


class Norm(nn.Module):
  """LayerNorm (GPT) or RMSNorm (Llama), computed in float32."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x_BxLxD):
    cfg = self.cfg
    ones = nn.with_logical_partitioning(nn.initializers.ones_init(), ('norm',))
    if cfg.norm == 'rmsnorm':
      norm = nn.RMSNorm(epsilon=cfg.norm_eps, dtype=cfg.jnp_dtype,
                        param_dtype=cfg.jnp_param_dtype, scale_init=ones)
    else:
      norm = nn.LayerNorm(epsilon=cfg.norm_eps, dtype=cfg.jnp_dtype,
                          param_dtype=cfg.jnp_param_dtype, use_bias=cfg.use_bias,
                          scale_init=ones, bias_init=zeros_init(('norm',)))
    return norm(x_BxLxD)


class Mlp(nn.Module):
  """GELU MLP (GPT-2) or SwiGLU MLP (Llama); hidden dims split over `mlp`."""
  cfg: ModelConfig
  out_std: float

  @nn.compact
  def __call__(self, x_BxLxD, deterministic: bool):
    cfg = self.cfg

    def dense(features, axes, std, name):
      return nn.Dense(features, use_bias=cfg.use_bias, dtype=cfg.jnp_dtype,
                      param_dtype=cfg.jnp_param_dtype,
                      kernel_init=dense_init(std, axes),
                      bias_init=zeros_init(axes[-1:]), name=name)

    up = ('embed', 'mlp')
    if cfg.mlp == 'swiglu':
      gate_BxLxF = dense(cfg.mlp_dim, up, cfg.init_std, 'gate')(x_BxLxD)
      up_BxLxF = dense(cfg.mlp_dim, up, cfg.init_std, 'up')(x_BxLxD)
      h_BxLxF = jax.nn.silu(gate_BxLxF) * up_BxLxF
    else:
      h_BxLxF = jax.nn.gelu(dense(cfg.mlp_dim, up, cfg.init_std, 'up')(x_BxLxD),
                            approximate=True)
    h_BxLxF = nn.with_logical_constraint(h_BxLxF, ('batch', 'length', 'act_mlp'))
    out_BxLxD = dense(cfg.d_model, ('mlp', 'embed'), self.out_std, 'down')(h_BxLxF)
    return nn.Dropout(cfg.dropout)(out_BxLxD, deterministic=deterministic)


class EinsumDense(nn.Module):
  """y = einsum(equation, x, kernel) + bias, with named kernel axes.

  Used where a kernel is more than 2-D (attention heads): flax's DenseGeneral
  initialises a flattened kernel, which would lose the per-axis names.
  """
  equation: str
  kernel_shape: tuple[int, ...]
  kernel_axes: tuple[str, ...]
  bias_ndim: int       # trailing kernel dims that carry a bias (0: no bias)
  std: float
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    kernel = self.param('kernel', dense_init(self.std, self.kernel_axes),
                        self.kernel_shape, cfg.jnp_param_dtype)
    y = jnp.einsum(self.equation, x.astype(cfg.jnp_dtype),
                   kernel.astype(cfg.jnp_dtype))
    if self.bias_ndim:
      bias = self.param('bias', zeros_init(self.kernel_axes[-self.bias_ndim:]),
                        self.kernel_shape[-self.bias_ndim:], cfg.jnp_param_dtype)
      y = y + bias.astype(cfg.jnp_dtype)
    return y
