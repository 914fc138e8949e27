"""The encoder-decoder's hyper-parameters: a TransformerConfig plus T5's own."""

import dataclasses

import ml_collections

from lm_jax.config import derived
from lm_jax.models.config import TransformerConfig

FEED_FORWARDS = ('relu', 'gated-gelu')  # T5 v1.0 | T5.1.1


@dataclasses.dataclass(frozen=True)
class EncDecConfig(TransformerConfig):
  """num_layers is the encoder's depth; the rest are T5's own settings."""
  num_decoder_layers: int = 6
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  feed_forward: str = 'relu'
  decoder_start_id: int = 0  # the decoder's first input when generating (T5's <pad>)

  @property
  def num_params_embedding(self) -> int:
    head = 0 if self.tie_embeddings else self.padded_vocab_size * self.d_model
    return self.padded_vocab_size * self.d_model + head


def decoder_layers(model_cfg: ml_collections.ConfigDict) -> int:
  """config.model.encdec.num_decoder_layers, or num_layers when it is 0."""
  return model_cfg.encdec.num_decoder_layers or model_cfg.num_layers


def mlp_dim(model_cfg: ml_collections.ConfigDict) -> int:
  """config.model.mlp_dim, or T5's 4 * d_model when it is 0."""
  return model_cfg.mlp_dim or 4 * model_cfg.d_model


def encdec_config_from(model_cfg: ml_collections.ConfigDict, vocab_size: int) -> EncDecConfig:
  """The dataclass from the `model` section (and its `encdec` subsection) and the vocabulary."""
  own = model_cfg.encdec
  vocab = model_cfg.vocab_size or vocab_size
  return EncDecConfig(
      vocab_size=vocab,
      padded_vocab_size=derived.padded_vocab_size(vocab, model_cfg.vocab_multiple),
      num_layers=model_cfg.num_layers,
      d_model=model_cfg.d_model,
      num_heads=model_cfg.num_heads,
      num_kv_heads=model_cfg.num_heads,
      head_dim=derived.head_dim(model_cfg),
      mlp_dim=mlp_dim(model_cfg),
      max_len=model_cfg.max_len,
      position='relative',
      norm='rmsnorm',
      norm_eps=model_cfg.norm_eps,
      mlp=own.feed_forward,
      use_bias=False,
      tie_embeddings=model_cfg.tie_embeddings,
      dropout=model_cfg.dropout,
      param_dtype=model_cfg.param_dtype,
      dtype=model_cfg.dtype,
      attention=model_cfg.attention,
      scan_layers=model_cfg.scan_layers,
      remat=model_cfg.remat,
      init_std=model_cfg.init_std,
      causal=False,
      num_decoder_layers=decoder_layers(model_cfg),
      relative_attention_num_buckets=own.relative_attention_num_buckets,
      relative_attention_max_distance=own.relative_attention_max_distance,
      feed_forward=own.feed_forward,
  )
