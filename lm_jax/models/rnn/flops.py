"""Analytic matmul FLOPs and exact parameter counts of the recurrent LM.

Same conventions as lm_jax/models/decoder/flops.py: matmuls only, 2 FLOPs per
multiply-add, per token, logits over the padded vocabulary, train = 3 x
forward. Gate nonlinearities and the state update are left out (O(G H) per
token against the matmuls' O(G H^2)). The cost per token does not depend on
the sequence length: a recurrence has no attention.
"""

from lm_jax.models.rnn.config import RNNConfig


def _layer_inputs(cfg: RNNConfig, layer: int) -> int:
  return cfg.d_model if layer == 0 else cfg.hidden_size


def flops_per_token(model_cfg: RNNConfig, seq_len: int) -> dict[str, float]:
  """Forward parts (input, recurrent, out_proj, lm_head), forward, train, train_remat."""
  del seq_len
  cfg = model_cfg
  G, H = cfg.num_gates, cfg.hidden_size
  parts = {
      'input': sum(2.0 * _layer_inputs(cfg, l) * G * H for l in range(cfg.num_layers)),
      'recurrent': cfg.num_layers * 2.0 * H * G * H,
      'out_proj': 2.0 * H * cfg.d_model if cfg.projects_output else 0.0,
      'lm_head': 2.0 * (cfg.d_model if cfg.tie_embeddings else H) * cfg.padded_vocab_size,
  }
  forward = sum(parts.values())
  return {**parts, 'forward': forward, 'train': 3.0 * forward, 'train_remat': 3.0 * forward}


def num_params(model_cfg: RNNConfig) -> dict[str, int]:
  """Exact parameter counts: total, embedding (table and untied head), non_embedding."""
  cfg = model_cfg
  G, H = cfg.num_gates, cfg.hidden_size
  layers = 0
  for l in range(cfg.num_layers):
    layers += _layer_inputs(cfg, l) * G * H + G * H + H * G * H
    layers += H if cfg.cell == 'gru' else 0  # the new gate's recurrent bias
  non_embedding = layers + (H * cfg.d_model if cfg.projects_output else 0)
  embedding = cfg.padded_vocab_size * cfg.d_model
  embedding += 0 if cfg.tie_embeddings else H * cfg.padded_vocab_size
  return {'total': embedding + non_embedding, 'embedding': embedding,
          'non_embedding': non_embedding}
