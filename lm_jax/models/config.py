"""The decoder model's hyper-parameters as one frozen dataclass."""

import dataclasses

import jax.numpy as jnp
import ml_collections

from lm_jax.config import derived

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Everything a Transformer language model needs to build its params."""
  vocab_size: int            # real vocabulary (tokenizer ids)
  padded_vocab_size: int     # embedding rows, >= vocab_size (shardable)
  num_layers: int
  d_model: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  mlp_dim: int
  max_len: int
  position: str = 'learned'  # learned | rope
  rope_theta: float = 10000.0
  norm: str = 'layernorm'    # layernorm | rmsnorm
  norm_eps: float = 1e-5
  mlp: str = 'gelu'          # gelu | swiglu
  use_bias: bool = False
  tie_embeddings: bool = True
  dropout: float = 0.0
  param_dtype: str = 'float32'
  dtype: str = 'float32'
  attention: str = 'auto'    # auto | xla | cudnn
  scan_layers: bool = False
  remat: str = 'none'
  init_std: float = 0.02
  causal: bool = True
  num_stages: int = 1              # pipeline stages (mesh.stage); 1: no pipeline
  pipeline_microbatches: int = 1   # microbatches through the pipeline per call
  decode: bool = False             # generation: KV cache (lm_jax/models/kv_cache.py)

  @property
  def jnp_dtype(self):
    return _DTYPES[self.dtype]

  @property
  def jnp_param_dtype(self):
    return _DTYPES[self.param_dtype]

  @property
  def num_params_embedding(self) -> int:
    positions = self.max_len * self.d_model if self.position == 'learned' else 0
    head = 0 if self.tie_embeddings else self.padded_vocab_size * self.d_model
    return self.padded_vocab_size * self.d_model + positions + head


def transformer_config_from(model_cfg: ml_collections.ConfigDict, vocab_size: int,
                      mesh_cfg: ml_collections.ConfigDict | None = None
                      ) -> TransformerConfig:
  """Builds the dataclass from the `model` config section and the tokenizer
  (and the `mesh` section's pipeline stages, when given)."""
  vocab = model_cfg.vocab_size or vocab_size
  stages = mesh_cfg.stage if mesh_cfg is not None else 1
  return TransformerConfig(
      vocab_size=vocab,
      padded_vocab_size=derived.padded_vocab_size(vocab, model_cfg.vocab_multiple),
      num_layers=model_cfg.num_layers,
      d_model=model_cfg.d_model,
      num_heads=model_cfg.num_heads,
      num_kv_heads=derived.num_kv_heads(model_cfg),
      head_dim=derived.head_dim(model_cfg),
      mlp_dim=derived.mlp_dim(model_cfg),
      max_len=model_cfg.max_len,
      position=model_cfg.position,
      rope_theta=model_cfg.rope_theta,
      norm=model_cfg.norm,
      norm_eps=model_cfg.norm_eps,
      mlp=model_cfg.mlp,
      use_bias=model_cfg.use_bias,
      tie_embeddings=model_cfg.tie_embeddings,
      dropout=model_cfg.dropout,
      param_dtype=model_cfg.param_dtype,
      dtype=model_cfg.dtype,
      attention=model_cfg.attention,
      scan_layers=model_cfg.scan_layers,
      remat=model_cfg.remat,
      init_std=model_cfg.init_std,
      num_stages=stages,
      pipeline_microbatches=mesh_cfg.pipeline_microbatches if stages > 1 else 1,
  )
