"""Recurrent LM: embedding -> stacked LSTM / GRU / RNN layers -> LM head."""

import flax.linen as nn
import jax.numpy as jnp

from lm_jax.models.layers import dense_init
from lm_jax.models.lm_head import lm_logits, token_embedding
from lm_jax.models.rnn.cells import Recurrence
from lm_jax.models.rnn.config import RNNConfig


def document_starts(segment_ids_BxL):
  """[B, L] bool: position t starts a packed document (its id differs from t-1's)."""
  first_Bx1 = jnp.ones_like(segment_ids_BxL[:, :1], dtype=bool)
  return jnp.concatenate([first_Bx1, segment_ids_BxL[:, 1:] != segment_ids_BxL[:, :-1]],
                         axis=1)


class RNNLM(nn.Module):
  """tokens [B, L] -> logits [B, L, V] (float32); position t sees tokens <= t.

  Dropout (model.dropout) on the embeddings, between layers and before the head:
  the non-recurrent connections, as in Zaremba et al. 2014. With `cfg.decode`
  the layers carry their state between calls and the logits are [B, 1, V]
  (lm_jax/models/rnn/decoding.py).
  """
  cfg: RNNConfig

  @nn.compact
  def __call__(self, inputs_BxL, segment_ids_BxL=None, deterministic: bool = True):
    cfg = self.cfg
    embed = token_embedding(cfg)
    x_BxLxF = nn.Dropout(cfg.dropout)(embed(inputs_BxL), deterministic=deterministic)
    x_BxLxF = nn.with_logical_constraint(x_BxLxF, ('batch', 'length', 'act_embed'))
    if segment_ids_BxL is None:
      reset_BxL = jnp.zeros(inputs_BxL.shape, bool)
    else:
      reset_BxL = document_starts(segment_ids_BxL)
    for i in range(cfg.num_layers):
      x_BxLxF = Recurrence(cfg, name=f'layer_{i}')(x_BxLxF, reset_BxL)
      x_BxLxF = nn.Dropout(cfg.dropout)(x_BxLxF, deterministic=deterministic)
    if cfg.decode:  # only the next token's logits are wanted
      x_BxLxF = x_BxLxF[:, -1:]
    if cfg.projects_output:
      x_BxLxF = nn.Dense(cfg.d_model, use_bias=False, dtype=cfg.jnp_dtype,
                         param_dtype=cfg.jnp_param_dtype,
                         kernel_init=dense_init(cfg.hidden_size ** -0.5, ('mlp', 'embed')),
                         name='out_proj')(x_BxLxF)
    return lm_logits(x_BxLxF, embed, cfg)
