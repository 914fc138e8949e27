"""Analytic matmul FLOPs and parameter counts of the decoder model.

Conventions (the usual ones: PaLM appendix B, nanoGPT's `estimate_mfu`):

* Only matrix multiplies are counted, at 2 FLOPs per multiply-add. Norms,
  activations, softmax, residual adds, biases, the embedding gather and the
  optimizer update are left out: they are a few percent of the total for
  d_model >= ~128 and are memory-bound anyway.
* Counts are *per token* of a length-`seq_len` sequence (multiply by
  batch * seq_len for a step).
* Causal attention: query i attends to keys 0..i, so a sequence of L tokens
  has L * (L + 1) / 2 query-key pairs; per token that is an average context of
  (L + 1) / 2. `causal=False` counts the full L x L (what XLA's dense attention
  actually computes before masking, and what nanoGPT's estimate_mfu counts).
* The logits matmul uses the padded vocabulary (the rows the matmul really has).
* `train` = 3 x forward: the backward pass of every matmul y = x W costs two
  matmuls of the same size (dx and dW). `train_remat` adds the forward matmuls
  that activation rematerialisation (`model.remat`) recomputes in the backward
  pass: for 'full' each block's forward again except the MLP down projection
  (whose output is dead in the recomputation, so XLA drops it; the textbook
  "4 x forward" is the upper bound), the attention scores/values (dots with
  batch dims) for 'dots_with_no_batch_dims_saveable', none for
  'dots_saveable'. MFU uses `train` (model FLOPs); `train_remat` is the
  hardware FLOPs (for HFU).

Checked against XLA's compiled cost analysis in tests/test_flops.py. (XLA's
cost analysis counts a while-loop body once, so with model.scan_layers it
reports about 1 / num_layers of the blocks' FLOPs: do not use it for MFU.)
"""

from lm_jax.models.config import TransformerConfig

BLOCK_PARTS = ('attn_q', 'attn_k', 'attn_v', 'attn_out', 'attn_scores',
               'attn_values', 'mlp')


def attention_context(seq_len: int, causal: bool) -> float:
  """Average number of keys each query attends to: (L + 1) / 2 causal, else L."""
  return (seq_len + 1) / 2 if causal else float(seq_len)


def block_flops_per_token(cfg: TransformerConfig, seq_len: int,
                          causal: bool | None = None) -> dict[str, float]:
  """Forward matmul FLOPs per token of one decoder block, by part."""
  causal = cfg.causal if causal is None else causal
  D, N, K, H, F = (cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                   cfg.mlp_dim)
  ctx = attention_context(seq_len, causal)
  num_mlp_matmuls = 3 if cfg.mlp == 'swiglu' else 2  # gate, up, down | up, down
  return {
      'attn_q': 2.0 * D * N * H,
      'attn_k': 2.0 * D * K * H,
      'attn_v': 2.0 * D * K * H,
      'attn_out': 2.0 * N * H * D,
      'attn_scores': 2.0 * N * H * ctx,  # q . k for every (query, key) pair
      'attn_values': 2.0 * N * H * ctx,  # probs @ v
      'mlp': 2.0 * num_mlp_matmuls * D * F,
  }


def flops_per_token(model_cfg: TransformerConfig, seq_len: int,
                    causal: bool | None = None) -> dict[str, float]:
  """Matmul FLOPs per token: forward parts (all layers), forward, train, train_remat.

  Keys: attn_q, attn_k, attn_v, attn_out, attn_scores, attn_values, mlp,
  lm_head (each the forward count summed over layers), attention (the seven
  attn_* summed), forward, train (3 x forward), train_remat (train plus what
  model_cfg.remat recomputes; dataclasses.replace(model_cfg, remat='full')
  gives the full-remat hardware count).
  `causal` defaults to model_cfg.causal (see the module doc for the convention).
  """
  block = block_flops_per_token(model_cfg, seq_len, causal)
  layers = model_cfg.num_layers
  parts = {name: layers * block[name] for name in BLOCK_PARTS}
  parts['lm_head'] = 2.0 * model_cfg.d_model * model_cfg.padded_vocab_size
  parts['attention'] = sum(v for k, v in parts.items() if k.startswith('attn_'))
  forward = sum(parts[name] for name in BLOCK_PARTS) + parts['lm_head']
  return {
      **parts,
      'forward': forward,
      'train': 3.0 * forward,
      'train_remat': 3.0 * forward + layers * _remat_recomputed(model_cfg, block),
  }


def _remat_recomputed(cfg: TransformerConfig, block: dict[str, float]) -> float:
  """Forward matmul FLOPs per token that cfg.remat recomputes in one block's backward."""
  if cfg.remat == 'full':
    # Everything but the MLP's down projection: its output only feeds the
    # block's residual output, which the backward pass never reads, so XLA
    # drops it from the recomputation.
    return sum(block.values()) - 2.0 * cfg.mlp_dim * cfg.d_model
  if cfg.remat == 'dots_with_no_batch_dims_saveable':
    return block['attn_scores'] + block['attn_values']  # batched dots: not saved
  return 0.0  # 'none'; 'dots_saveable' keeps every matmul output


def _norm_params(cfg: TransformerConfig) -> int:
  """Scale (and LayerNorm bias when use_bias) of one norm."""
  with_bias = cfg.norm == 'layernorm' and cfg.use_bias
  return cfg.d_model * (2 if with_bias else 1)


def num_params(model_cfg: TransformerConfig) -> dict[str, int]:
  """Exact parameter counts: total, embedding (tokens, positions, untied head), non_embedding."""
  cfg = model_cfg
  D, N, K, H, F = (cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim,
                   cfg.mlp_dim)
  bias = 1 if cfg.use_bias else 0
  attention = (D * N * H + 2 * D * K * H + N * H * D
               + bias * (N * H + 2 * K * H + D))
  num_mlp_in = 2 if cfg.mlp == 'swiglu' else 1
  mlp = num_mlp_in * (D * F + bias * F) + F * D + bias * D
  block = attention + mlp + 2 * _norm_params(cfg)
  embedding = cfg.num_params_embedding
  non_embedding = cfg.num_layers * block + _norm_params(cfg)  # + final norm
  return {'total': embedding + non_embedding, 'embedding': embedding,
          'non_embedding': non_embedding}


def flops_per_step(model_cfg: TransformerConfig, seq_len: int, batch_size: int,
                   key: str = 'train') -> float:
  """flops_per_token(...)[key] times the tokens of a [batch_size, seq_len] batch."""
  return flops_per_token(model_cfg, seq_len)[key] * batch_size * seq_len
