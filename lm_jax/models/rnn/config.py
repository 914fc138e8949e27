"""The rnn family's hyper-parameters as one frozen dataclass."""

import dataclasses

import jax.numpy as jnp

from lm_jax.config import derived

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}

# Gate blocks of each cell's pre-activation, in PyTorch's order:
# lstm (input, forget, cell, output), gru (reset, update, new), rnn (one tanh).
CELL_GATES = {'lstm': 4, 'gru': 3, 'rnn': 1}


@dataclasses.dataclass(frozen=True)
class RNNConfig:
  """Everything the recurrent LM needs to build its params."""
  vocab_size: int
  padded_vocab_size: int
  cell: str            # lstm | gru | rnn
  num_layers: int
  d_model: int         # embedding width
  hidden_size: int     # state width of every layer
  tie_embeddings: bool = True
  dropout: float = 0.0
  param_dtype: str = 'float32'
  dtype: str = 'float32'
  init_std: float = 0.02
  # Decoding (lm_jax/models/rnn/decoding.py): each layer keeps its final state in
  # the `cache` collection and starts from it; logits of the last position only.
  decode: bool = False

  @property
  def num_gates(self) -> int:
    return CELL_GATES[self.cell]

  @property
  def projects_output(self) -> bool:
    """A tied head needs d_model features: the top state is projected to them."""
    return self.tie_embeddings and self.hidden_size != self.d_model

  @property
  def jnp_dtype(self):
    return _DTYPES[self.dtype]

  @property
  def jnp_param_dtype(self):
    return _DTYPES[self.param_dtype]


def rnn_config_from(model_cfg, vocab_size: int) -> RNNConfig:
  """The dataclass from the `model` config section and the tokenizer's vocabulary."""
  vocab = model_cfg.vocab_size or vocab_size
  own = model_cfg.rnn
  return RNNConfig(
      vocab_size=vocab,
      padded_vocab_size=derived.padded_vocab_size(vocab, model_cfg.vocab_multiple),
      cell=own.cell, num_layers=model_cfg.num_layers, d_model=model_cfg.d_model,
      hidden_size=own.hidden_size or model_cfg.d_model,
      tie_embeddings=model_cfg.tie_embeddings, dropout=model_cfg.dropout,
      param_dtype=model_cfg.param_dtype, dtype=model_cfg.dtype, init_std=model_cfg.init_std)
