"""Building blocks shared by the Transformer families: norms, MLPs, dense maps."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.models.config import TransformerConfig


def dense_init(std: float, axes: tuple[str, ...]):
  """Normal(std) kernel initializer that names the kernel's logical axes."""
  return nn.with_logical_partitioning(nn.initializers.normal(std), axes)


def zeros_init(axes: tuple[str, ...]):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), axes)


class Norm(nn.Module):
  """LayerNorm (GPT) or RMSNorm (Llama), computed in float32."""
  cfg: TransformerConfig

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
  cfg: TransformerConfig
  out_std: float

  @nn.compact
  def __call__(self, x_BxLxD, deterministic: bool):
    cfg = self.cfg

    def dense(features, axes, std, name):
      # Same params as nn.Dense (kernel [in, out], bias [out]), 2-D matmul.
      in_features = cfg.d_model if axes[0] == 'embed' else cfg.mlp_dim
      return EinsumDense('bld,df->blf', (in_features, features), axes,
                         int(cfg.use_bias), std, cfg, name=name)

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


def matmul_2d(equation: str, x, kernel):
  """einsum(equation, x, kernel) for 'x[..., K...], kernel[K..., O...]', as one
  [prod(...), prod(K)] x [prod(K), prod(O)] matmul.

  Same math as jnp.einsum. Why: for a [B, L, D] x [D, F] dot, XLA:CPU (jax
  0.10) computes the weight gradient from a physically transposed [F, B*L]
  copy of the incoming gradient, with the activation derivative (GELU) fused
  into that strided copy: ~50 ms per MLP at nanoGPT's size, ~15% of a train
  step. Flattening to 2-D first removes those copies (the reshapes of
  contiguous dims are free on every backend; see docs/performance.md).
  """
  x_spec, rest = equation.split(',')
  kernel_spec, out_spec = rest.split('->')
  num_contract = sum(1 for c in kernel_spec if c not in out_spec)
  contracted = kernel_spec[:num_contract]
  if x_spec[len(x_spec) - num_contract:] != contracted or any(
      c in out_spec for c in contracted) or out_spec != (
          x_spec[:len(x_spec) - num_contract] + kernel_spec[num_contract:]):
    return jnp.einsum(equation, x, kernel)  # not of that form: plain einsum
  batch_shape = x.shape[:x.ndim - num_contract]
  out_shape = kernel.shape[num_contract:]
  k = int(np.prod(kernel.shape[:num_contract]))
  y_2d = as_token_rows(x.reshape(-1, k)) @ kernel.reshape(k, -1)
  return as_token_rows(y_2d).reshape(batch_shape + out_shape)


def as_token_rows(x_TxF):
  """Keeps the [B * L, F] rows split the way batch and length were.

  Without it GSPMD cannot tell how the merged dim is laid out and gathers the
  whole sequence when length is split (sequence parallelism); `act_tokens`
  maps to the batch axes followed by `sequence`, which is exactly that layout.
  """
  return nn.with_logical_constraint(
      x_TxF, ('act_tokens', jax.sharding.PartitionSpec.UNCONSTRAINED))


class EinsumDense(nn.Module):
  """y = einsum(equation, x, kernel) + bias, with named kernel axes.

  Used where a kernel is more than 2-D (attention heads): flax's DenseGeneral
  initialises a flattened kernel, which would lose the per-axis names. Also
  for the MLP (2-D kernels), for matmul_2d's speed on CPU.
  """
  equation: str
  kernel_shape: tuple[int, ...]
  kernel_axes: tuple[str, ...]
  bias_ndim: int       # trailing kernel dims that carry a bias (0: no bias)
  std: float
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    kernel = self.param('kernel', dense_init(self.std, self.kernel_axes),
                        self.kernel_shape, cfg.jnp_param_dtype)
    y = matmul_2d(self.equation, x.astype(cfg.jnp_dtype),
                  kernel.astype(cfg.jnp_dtype))
    if self.bias_ndim:
      bias = self.param('bias', zeros_init(self.kernel_axes[-self.bias_ndim:]),
                        self.kernel_shape[-self.bias_ndim:], cfg.jnp_param_dtype)
      y = y + bias.astype(cfg.jnp_dtype)
    return y
