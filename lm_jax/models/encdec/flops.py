"""Analytic matmul FLOPs and parameter counts of the encoder-decoder.

Same conventions as lm_jax/models/decoder/flops.py (matmuls only, 2 FLOPs per
multiply-add, train = 3 x forward). A "token" is an encoder input token: an
example of S encoder and T decoder tokens costs S * flops_per_token. T (the
target length) defaults to S; pass it when it differs (span corruption's
targets are about a quarter of the inputs). `train_remat` adds what
`model.remat` recomputes in the backward pass, as XLA:CPU's compiled gradient
does (tests/test_encdec_scan.py): under 'full' every block's forward but its MLP
down projection (whose output only feeds the residual, so XLA drops it, as in the
decoder family) and the decoder's cross-attention keys/values of the encoder
output (XLA keeps the forward's), under 'dots_with_no_batch_dims_saveable' the
attention scores and values (self and cross; an upper bound), under
'dots_saveable' nothing.
"""

from lm_jax.models.encdec.config import EncDecConfig


def _mlp(cfg: EncDecConfig) -> float:
  num_matmuls = 3 if cfg.feed_forward == 'gated-gelu' else 2
  return 2.0 * num_matmuls * cfg.d_model * cfg.mlp_dim


def example_flops(cfg: EncDecConfig, S: int, T: int) -> dict[str, float]:
  """Forward matmul FLOPs of one example (S encoder, T decoder tokens), by part."""
  D, NH = cfg.d_model, cfg.num_heads * cfg.head_dim
  proj = 2.0 * D * NH  # one of q, k, v, out for one token
  encoder = cfg.num_layers * S * (4 * proj + 2 * 2.0 * NH * S + _mlp(cfg))
  self_attn = 4 * proj + 2 * 2.0 * NH * (T + 1) / 2  # causal: (T + 1) / 2 keys on average
  cross = 2 * proj + 2 * 2.0 * NH * S                # q, out and scores/values per query
  decoder = cfg.num_decoder_layers * (
      T * (self_attn + cross + _mlp(cfg)) + S * 2 * proj)  # + cross k, v of the encoder
  return {'encoder': encoder, 'decoder': decoder,
          'lm_head': T * 2.0 * D * cfg.padded_vocab_size}


def _remat_recomputed(cfg: EncDecConfig, S: int, T: int, parts: dict[str, float]) -> float:
  """Forward matmul FLOPs of one example that cfg.remat recomputes in the backward."""
  NH = cfg.num_heads * cfg.head_dim
  if cfg.remat == 'full':
    down = 2.0 * cfg.mlp_dim * cfg.d_model  # the MLP's last matmul, per token
    cross_kv = S * 2 * 2.0 * cfg.d_model * NH  # a decoder layer's k, v of the encoder output
    return (parts['encoder'] - cfg.num_layers * S * down
            + parts['decoder'] - cfg.num_decoder_layers * (T * down + cross_kv))
  if cfg.remat == 'dots_with_no_batch_dims_saveable':  # the batched dots: not saved
    encoder = cfg.num_layers * S * 2 * 2.0 * NH * S
    decoder = cfg.num_decoder_layers * T * 2 * 2.0 * NH * ((T + 1) / 2 + S)
    return encoder + decoder
  return 0.0  # 'none'; 'dots_saveable' keeps every matmul output


def flops_per_token(model_cfg: EncDecConfig, seq_len: int,
                    target_len: int | None = None) -> dict[str, float]:
  """Matmul FLOPs per encoder token: encoder, decoder, lm_head, forward, train, train_remat."""
  T = seq_len if target_len is None else target_len
  example = example_flops(model_cfg, seq_len, T)
  parts = {k: v / seq_len for k, v in example.items()}
  forward = sum(parts.values())
  recomputed = _remat_recomputed(model_cfg, seq_len, T, example) / seq_len
  return {**parts, 'forward': forward, 'train': 3.0 * forward,
          'train_remat': 3.0 * forward + recomputed}


def num_params(model_cfg: EncDecConfig) -> dict[str, int]:
  """Exact parameter counts: total, embedding (tokens, untied head), non_embedding."""
  cfg = model_cfg
  D, NH, F = cfg.d_model, cfg.num_heads * cfg.head_dim, cfg.mlp_dim
  attention = 4 * D * NH
  mlp = (2 if cfg.feed_forward == 'gated-gelu' else 1) * D * F + F * D
  bias_table = cfg.relative_attention_num_buckets * cfg.num_heads
  encoder = cfg.num_layers * (attention + mlp + 2 * D) + bias_table + D
  decoder = cfg.num_decoder_layers * (2 * attention + mlp + 3 * D) + bias_table + D
  embedding = cfg.num_params_embedding
  return {'total': embedding + encoder + decoder, 'embedding': embedding,
          'non_embedding': encoder + decoder}
