"""Values the config leaves at 0 ("derive it"), resolved in one place.

The model, the sharding checks in validate.py and the FLOPs counter all need
the same effective head_dim / num_kv_heads / mlp_dim / padded vocabulary, so
they are computed here and nowhere else.
"""

SWIGLU_MULTIPLE = 256  # Llama: hidden = 8/3 * d_model rounded up to a multiple of 256


def head_dim(model) -> int:
  """model.head_dim, or d_model // num_heads when it is 0."""
  return model.head_dim or model.d_model // model.num_heads


def num_kv_heads(model) -> int:
  """model.num_kv_heads, or num_heads (plain multi-head attention) when it is 0."""
  return model.num_kv_heads or model.num_heads


def mlp_dim(model) -> int:
  """model.mlp_dim, or 4 * d_model (gelu) / Llama's 8/3 * d_model rounded up to 256 (swiglu)."""
  if model.mlp_dim:
    return model.mlp_dim
  if model.mlp == 'swiglu':
    hidden = int(8 * model.d_model / 3)
    return -(-hidden // SWIGLU_MULTIPLE) * SWIGLU_MULTIPLE
  return 4 * model.d_model


def padded_vocab_size(vocab_size: int, multiple: int) -> int:
  """vocab_size rounded up to a multiple of `multiple` (the embedding's row count)."""
  multiple = max(int(multiple), 1)
  return -(-int(vocab_size) // multiple) * multiple
