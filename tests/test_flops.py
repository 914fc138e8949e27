"""The analytic FLOP and parameter counts against XLA and the initialised model.

XLA's cost analysis counts every HLO op of the compiled program: the matmuls
(2 FLOPs per multiply-add, as flops.py does) *plus* elementwise ops, norms,
softmax and the loss, and its dense attention (model.attention='xla') computes
the full L x L scores before masking. So XLA's count is compared with the
non-causal variant of the analytic count and must be a little larger: at
d_model 256 / L 128 the non-matmul work measures 0.9-1.6% (jax 0.10), so
XLA / analytic must lie in [1, 1.03]. A missing or doubled matmul part would leave that window (the
smallest part, the attention scores or values, is 3.6% of the total at these
shapes), and the causal count (4.5% lower here) must be clearly below XLA's.
Single device, no mesh: plain jax.jit.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.metrics import flops as mfu_flops, hardware
from lm_jax.models.decoder import flops
from lm_jax.models import build_model
from lm_jax.objectives.cross_entropy import CrossEntropy

BATCH, SEQ, VOCAB = 2, 128, 500


def _model_cfg(style: str, **overrides):
  m = base_config().model
  m.update(num_layers=2, d_model=256, num_heads=4, max_len=SEQ, attention='xla')
  if style == 'llama':
    m.update(num_heads=8, num_kv_heads=2, position='rope', norm='rmsnorm',
             mlp='swiglu', tie_embeddings=False)
  if style == 'gpt_bias':
    m.update(use_bias=True)
  m.update(**overrides)
  return m


def _xla_flops(model, fn_of_loss):
  """FLOPs XLA's cost analysis reports for fn_of_loss(loss)(params, batch)."""
  inputs_BxL = jnp.zeros((BATCH, SEQ), jnp.int32)
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), inputs_BxL)['params'])
  batch = {'inputs': inputs_BxL, 'targets': inputs_BxL,
           'weights': jnp.ones((BATCH, SEQ), jnp.float32)}

  def loss(p, b):
    logits = model.apply({'params': p}, b['inputs'])
    return CrossEntropy(vocab_size=VOCAB)({'logits': logits}, b)[0]

  cost = jax.jit(fn_of_loss(loss)).lower(params, batch).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax: one dict per program
    cost = cost[0]
  return cost['flops']


@pytest.mark.parametrize('style', ['gpt', 'llama'])
def test_forward_flops_match_xla(style):
  model, cfg = build_model(_model_cfg(style), VOCAB)
  xla = _xla_flops(model, lambda loss: loss)
  analytic = flops.flops_per_token(cfg, SEQ, causal=False)['forward'] * BATCH * SEQ
  assert 1.0 <= xla / analytic <= 1.03, xla / analytic
  causal = flops.flops_per_token(cfg, SEQ)['forward'] * BATCH * SEQ
  assert causal / xla < 0.97, causal / xla


@pytest.mark.parametrize('style', ['gpt', 'llama'])
def test_train_flops_match_xla_gradient(style):
  model, cfg = build_model(_model_cfg(style), VOCAB)
  xla = _xla_flops(model, jax.grad)
  analytic = flops.flops_per_token(cfg, SEQ, causal=False)['train'] * BATCH * SEQ
  assert 1.0 <= xla / analytic <= 1.03, xla / analytic


def test_full_remat_flops_match_xla_gradient():
  model, cfg = build_model(_model_cfg('gpt', remat='full'), VOCAB)
  xla = _xla_flops(model, jax.grad)
  counts = flops.flops_per_token(cfg, SEQ, causal=False)
  assert counts['train_remat'] > counts['train']
  analytic = counts['train_remat'] * BATCH * SEQ
  assert 1.0 <= xla / analytic <= 1.03, xla / analytic


def test_dots_remat_flops_bound_xla_gradient():
  """Whether XLA really recomputes the attention dots under this policy depends
  on how JAX lowers attention; train and train_remat bound what it does."""
  model, cfg = build_model(
      _model_cfg('gpt', remat='dots_with_no_batch_dims_saveable'), VOCAB)
  xla = _xla_flops(model, jax.grad)
  counts = flops.flops_per_token(cfg, SEQ, causal=False)
  assert counts['train_remat'] > counts['train']
  tokens = BATCH * SEQ
  assert counts['train'] * tokens <= xla <= 1.03 * counts['train_remat'] * tokens


def test_blockwise_attention_skips_the_upper_triangle():
  """CPU's default attention computes (n + 1) / 2n of the L x L scores for n blocks."""
  from lm_jax.models.attention import CAUSAL_BLOCK
  model, cfg = build_model(_model_cfg('gpt', attention='auto'), VOCAB)
  dense_model, _ = build_model(_model_cfg('gpt'), VOCAB)
  xla, xla_dense = _xla_flops(model, jax.grad), _xla_flops(dense_model, jax.grad)
  dense = flops.flops_per_token(cfg, SEQ, causal=False)
  n = SEQ // CAUSAL_BLOCK
  attn = 3 * (dense['attn_scores'] + dense['attn_values']) * BATCH * SEQ
  assert n > 1
  # The skipped scores' softmax/mask elementwise work goes too: a bit more than the matmuls.
  assert xla_dense - xla == pytest.approx(attn * (1 - (n + 1) / (2 * n)), rel=0.05)


def test_flops_parts_by_hand():
  """nanoGPT's 'baby GPT' (6 x 384, L 256, vocab 65 -> 128) worked out by hand."""
  m = _model_cfg('gpt', num_layers=6, d_model=384, num_heads=6, max_len=256,
                 vocab_size=65)
  _, cfg = build_model(m, 65)
  f = flops.flops_per_token(cfg, 256)
  D, L = 384, 256
  assert f['attn_q'] == f['attn_k'] == f['attn_v'] == f['attn_out'] == 6 * 2 * D * D
  assert f['attn_scores'] == f['attn_values'] == 6 * 2 * D * (L + 1) / 2
  assert f['mlp'] == 6 * 2 * 2 * D * 4 * D
  assert f['lm_head'] == 2 * D * 128
  assert f['forward'] == 6 * (24 * D * D + 2 * D * (L + 1)) + 2 * D * 128
  assert f['train'] == 3 * f['forward'] == f['train_remat']
  noncausal = flops.flops_per_token(cfg, 256, causal=False)
  # nanoGPT's estimate_mfu: 6 N + 12 n_layer n_head head_dim T (N with the tied
  # 65-row embedding, without positions); ours pads the logits to 128 rows.
  nanogpt = 6 * (6 * 12 * D * D + 65 * D) + 12 * 6 * D * L
  assert noncausal['train'] - nanogpt == pytest.approx(6 * D * (128 - 65))


def test_gqa_and_swiglu_counts():
  _, cfg = build_model(_model_cfg('llama'), VOCAB)
  f = flops.flops_per_token(cfg, SEQ)
  assert f['attn_k'] == f['attn_q'] * cfg.num_kv_heads / cfg.num_heads
  assert f['mlp'] == cfg.num_layers * 3 * 2 * cfg.d_model * cfg.mlp_dim
  remat_full = flops.flops_per_token(dataclasses.replace(cfg, remat='full'), SEQ)
  blocks = f['forward'] - f['lm_head']
  down = cfg.num_layers * 2 * cfg.mlp_dim * cfg.d_model
  assert remat_full['train_remat'] == pytest.approx(f['train'] + blocks - down)


@pytest.mark.parametrize('style', ['gpt', 'gpt_bias', 'llama'])
@pytest.mark.parametrize('position', ['learned', 'rope'])
def test_num_params_matches_initialised_model(style, position):
  model, cfg = build_model(_model_cfg(style, position=position), VOCAB)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 8), jnp.int32))['params']
  leaves = jax.tree.leaves(nn.meta.unbox(shapes))
  actual = sum(int(np.prod(leaf.shape)) for leaf in leaves)
  counts = flops.num_params(cfg)
  assert counts['total'] == actual
  assert counts['non_embedding'] == actual - cfg.num_params_embedding
  assert counts['embedding'] + counts['non_embedding'] == counts['total']


def test_num_params_scanned_layers_is_the_same():
  model, cfg = build_model(_model_cfg('llama', scan_layers=True), VOCAB)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, 8), jnp.int32))['params']
  actual = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.meta.unbox(shapes)))
  assert flops.num_params(cfg)['total'] == actual


def test_mfu():
  assert mfu_flops.mfu(1000.0, 6e7, 1.2e11) == pytest.approx(0.5)
  assert np.isnan(mfu_flops.mfu(1000.0, 6e7, 0.0))


def test_peak_flops_table_and_override():
  assert hardware.lookup_peak_flops('TPU v5 lite', 'bfloat16') == 197e12
  assert hardware.lookup_peak_flops('NVIDIA H100 80GB HBM3', jnp.bfloat16) == 989.4e12
  assert hardware.lookup_peak_flops('NVIDIA H100 PCIe', 'bfloat16') == 756.5e12
  assert hardware.lookup_peak_flops('NVIDIA A100-SXM4-40GB', 'float32') == 156e12
  assert hardware.lookup_peak_flops('some new NVIDIA H200 variant') == 989.4e12
  assert hardware.lookup_peak_flops('Quantum Abacus') is None
  cpu = jax.devices('cpu')[0]
  assert hardware.peak_flops_per_device(cpu, 'float32', override=1e12) == 1e12
  # 8 simulated devices (conftest) share the machine's cores.
  per_device = hardware.peak_flops_per_device(cpu, 'float32')
  num_cpu_devices = len(jax.local_devices(backend='cpu'))
  assert per_device == pytest.approx(hardware.CPU_DEFAULT_PEAK_FLOPS_PER_CORE
                                     * hardware.cpu_cores() / num_cpu_devices)
