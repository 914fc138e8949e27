"""The encoder's hyper-parameters: the Transformer ones plus BERT's own."""

import dataclasses

import ml_collections

from lm_jax.models.config import TransformerConfig, transformer_config_from

NORM_POSITIONS = ('post', 'pre')


@dataclasses.dataclass(frozen=True)
class EncoderConfig(TransformerConfig):
  """TransformerConfig (learned positions, LayerNorm, GELU, tied MLM decoder) plus:"""
  causal: bool = False
  norm_position: str = 'post'   # post: BERT's x = LN(x + f(x)); pre: x + f(LN(x)), final LN
  type_vocab_size: int = 2      # token types (segments A / B)
  nsp_head: bool = False        # tanh pooler on [CLS] + 2-way next-sentence classifier


def encoder_config_from(model_cfg: ml_collections.ConfigDict, vocab_size: int,
                        mesh_cfg: ml_collections.ConfigDict | None = None) -> EncoderConfig:
  """The resolved EncoderConfig of the `model` section (its `encoder` subsection included)."""
  del mesh_cfg  # no pipeline: the encoder's layers are not split into stages
  base = transformer_config_from(model_cfg, vocab_size)
  own = model_cfg.encoder
  fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(TransformerConfig)}
  fields.update(position='learned', norm='layernorm', mlp='gelu', tie_embeddings=True,
                num_kv_heads=base.num_heads, causal=False)
  return EncoderConfig(**fields, norm_position=own.norm_position,
                       type_vocab_size=own.type_vocab_size, nsp_head=own.nsp_head)
