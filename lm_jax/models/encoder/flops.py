"""Analytic matmul FLOPs and exact parameter counts of the encoder (BERT).

Same conventions as lm_jax/models/decoder/flops.py (matmuls only, 2 FLOPs
per multiply-add, per token of a length-`seq_len` sequence, train = 3 x
forward), with bidirectional attention (every query meets all L keys). The
MLM head adds its transform (D x D) and the tied decoder (D x padded V) on
every token; the pooler and NSP classifier run once per sequence, so they
count 1 / seq_len per token.
"""

from lm_jax.models.decoder import flops as decoder_flops
from lm_jax.models.encoder.config import EncoderConfig


def flops_per_token(model_cfg: EncoderConfig, seq_len: int) -> dict[str, float]:
  """Matmul FLOPs per token: the blocks' parts, mlm_head, pooler_nsp, forward, train, train_remat."""
  block = decoder_flops.block_flops_per_token(model_cfg, seq_len, causal=False)
  layers, D = model_cfg.num_layers, model_cfg.d_model
  parts = {name: layers * block[name] for name in decoder_flops.BLOCK_PARTS}
  parts['attention'] = sum(v for k, v in parts.items() if k.startswith('attn_'))
  parts['mlm_head'] = 2.0 * D * D + 2.0 * D * model_cfg.padded_vocab_size
  parts['pooler_nsp'] = (2.0 * D * D + 2.0 * D * 2) / seq_len if model_cfg.nsp_head else 0.0
  forward = (sum(parts[name] for name in decoder_flops.BLOCK_PARTS) + parts['mlm_head']
             + parts['pooler_nsp'])
  # remat recomputes the block's forward (the MLM head is outside the blocks).
  recomputed = {'full': sum(block.values()),
                'dots_with_no_batch_dims_saveable': block['attn_scores'] + block['attn_values']
                }.get(model_cfg.remat, 0.0)
  return {**parts, 'forward': forward, 'train': 3.0 * forward,
          'train_remat': 3.0 * forward + layers * recomputed}


def num_params(model_cfg: EncoderConfig) -> dict[str, int]:
  """Exact parameter counts: total, embedding (words, positions, types), non_embedding."""
  cfg = model_cfg
  D, N, H, F = cfg.d_model, cfg.num_heads, cfg.head_dim, cfg.mlp_dim
  bias = 1 if cfg.use_bias else 0
  norm = D * (1 + bias)
  attention = 4 * D * N * H + bias * (3 * N * H + D)
  mlp = 2 * D * F + bias * (F + D)
  block = attention + mlp + 2 * norm
  embedding = (cfg.padded_vocab_size + cfg.max_len + cfg.type_vocab_size) * D
  final_norm = norm if cfg.norm_position == 'pre' else 0
  mlm_head = D * D + D + norm + cfg.padded_vocab_size  # transform, its LN, decoder bias
  pooler_nsp = (D * D + D + 2 * D + 2) if cfg.nsp_head else 0
  non_embedding = cfg.num_layers * block + norm + final_norm + mlm_head + pooler_nsp
  return {'total': embedding + non_embedding, 'embedding': embedding,
          'non_embedding': non_embedding}
