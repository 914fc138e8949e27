"""Token embedding and LM head of the families without attention (rnn, cnn).

`cfg` is the family's resolved model dataclass; it must have vocab_size,
padded_vocab_size, d_model, tie_embeddings, init_std, jnp_dtype and
jnp_param_dtype.
"""

import flax.linen as nn
import jax.numpy as jnp

from lm_jax.models.layers import as_token_rows, dense_init


def token_embedding(cfg) -> nn.Embed:
  """The [padded vocab, d_model] embedding table (also the tied LM head)."""
  return nn.Embed(cfg.padded_vocab_size, cfg.d_model, dtype=cfg.jnp_dtype,
                  param_dtype=cfg.jnp_param_dtype,
                  embedding_init=dense_init(cfg.init_std, ('vocab', 'embed')), name='embed')


def lm_logits(x_BxLxF, embed: nn.Embed, cfg):
  """Float32 logits [B, L, padded V]; padding rows of the vocabulary get -1e9.

  Tied: x must have d_model features and the embedding is the head; untied: a
  [F, V] `lm_head` kernel. Call from a compact method (it creates `lm_head`).
  """
  x_TxF = as_token_rows(x_BxLxF.reshape(-1, x_BxLxF.shape[-1]))
  if cfg.tie_embeddings:
    logits_TxV = embed.attend(x_TxF.astype(cfg.jnp_dtype))
  else:
    logits_TxV = nn.Dense(cfg.padded_vocab_size, use_bias=False, dtype=cfg.jnp_dtype,
                          param_dtype=cfg.jnp_param_dtype,
                          kernel_init=dense_init(cfg.init_std, ('embed', 'vocab')),
                          name='lm_head')(x_TxF)
  logits_BxLxV = logits_TxV.reshape(x_BxLxF.shape[:2] + (-1,)).astype(jnp.float32)
  logits_BxLxV = nn.with_logical_constraint(logits_BxLxV, ('batch', 'length', 'act_vocab'))
  if cfg.padded_vocab_size > cfg.vocab_size:
    real_V = jnp.arange(cfg.padded_vocab_size) < cfg.vocab_size
    logits_BxLxV = jnp.where(real_V, logits_BxLxV, -1e9)
  return logits_BxLxV

