"""The cnn family's hyper-parameters as one frozen dataclass."""

import dataclasses

import jax.numpy as jnp

from lm_jax.config import derived

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class CNNConfig:
  """Everything the gated CNN LM needs to build its params."""
  vocab_size: int
  padded_vocab_size: int
  num_layers: int      # residual blocks
  d_model: int         # embedding and residual width
  kernel_size: int     # taps of each causal convolution (receptive field grows by k-1 per block)
  channels: int        # GLU width of a block; != d_model adds a 1x1 projection back
  pre_norm: bool = True
  norm: str = 'layernorm'
  norm_eps: float = 1e-5
  use_bias: bool = False   # of the norms (the convolutions always have biases, as the paper)
  tie_embeddings: bool = True
  dropout: float = 0.0
  param_dtype: str = 'float32'
  dtype: str = 'float32'
  init_std: float = 0.02

  @property
  def projects(self) -> bool:
    return self.channels != self.d_model

  @property
  def jnp_dtype(self):
    return _DTYPES[self.dtype]

  @property
  def jnp_param_dtype(self):
    return _DTYPES[self.param_dtype]


def cnn_config_from(model_cfg, vocab_size: int) -> CNNConfig:
  """The dataclass from the `model` config section and the tokenizer's vocabulary."""
  vocab = model_cfg.vocab_size or vocab_size
  own = model_cfg.cnn
  return CNNConfig(
      vocab_size=vocab,
      padded_vocab_size=derived.padded_vocab_size(vocab, model_cfg.vocab_multiple),
      num_layers=model_cfg.num_layers, d_model=model_cfg.d_model,
      kernel_size=own.kernel_size, channels=own.channels or model_cfg.d_model,
      pre_norm=own.pre_norm, norm=model_cfg.norm, norm_eps=model_cfg.norm_eps,
      use_bias=model_cfg.use_bias, tie_embeddings=model_cfg.tie_embeddings,
      dropout=model_cfg.dropout, param_dtype=model_cfg.param_dtype, dtype=model_cfg.dtype,
      init_std=model_cfg.init_std)
