"""Analytic matmul FLOPs and exact parameter counts of the gated CNN LM.

Same conventions as lm_jax/models/decoder/flops.py: matmuls only (a
convolution of K taps is K matmuls), 2 FLOPs per multiply-add, per token,
logits over the padded vocabulary, train = 3 x forward. The cost per token
does not depend on the sequence length.
"""

from lm_jax.models.cnn.config import CNNConfig


def flops_per_token(model_cfg: CNNConfig, seq_len: int) -> dict[str, float]:
  """Forward parts (conv, out_proj, lm_head), forward, train, train_remat."""
  del seq_len
  cfg = model_cfg
  K, D, C = cfg.kernel_size, cfg.d_model, cfg.channels
  parts = {
      'conv': cfg.num_layers * 2.0 * K * D * 2 * C,
      'out_proj': cfg.num_layers * 2.0 * C * D if cfg.projects else 0.0,
      'lm_head': 2.0 * D * cfg.padded_vocab_size,
  }
  forward = sum(parts.values())
  return {**parts, 'forward': forward, 'train': 3.0 * forward, 'train_remat': 3.0 * forward}


def num_params(model_cfg: CNNConfig) -> dict[str, int]:
  """Exact parameter counts: total, embedding (table and untied head), non_embedding."""
  cfg = model_cfg
  K, D, C = cfg.kernel_size, cfg.d_model, cfg.channels
  norm = (2 * D if cfg.norm == 'layernorm' and cfg.use_bias else D) if cfg.pre_norm else 0
  block = K * D * 2 * C + 2 * C + (C * D if cfg.projects else 0) + norm
  non_embedding = cfg.num_layers * block + norm  # + the final norm
  embedding = cfg.padded_vocab_size * D * (1 if cfg.tie_embeddings else 2)
  return {'total': embedding + non_embedding, 'embedding': embedding,
          'non_embedding': non_embedding}
