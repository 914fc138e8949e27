"""Every attention implementation the config can select, against the float64
NumPy reference (tests/numpy_reference.py): the blockwise causal kernel (what
`model.attention=auto` runs on CPU), XLA's jax.nn.dot_product_attention
(`xla`; what `auto` runs on TPU and for masked or fp32 runs on GPU) and cuDNN
(`cudnn`, GPU only) -- with MHA, GQA and MQA, packed segments, padding and
both together; then the decoder built with each `model.attention` value."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.models import attention as attention_lib
from lm_jax.models import build_model
from lm_jax.models.masks import AttentionMask
from tests.numpy_reference import np_allowed, np_attention, np_decoder
from tests.sharded_setup import tiny_model_cfg

B, L, N, H = 2, 80, 8, 16
FAST_COMPILE = {'xla_backend_optimization_level': 0,
                'xla_llvm_disable_expensive_passes': True}
ON_GPU = jax.default_backend() == 'gpu'
needs_gpu = pytest.mark.skipif(not ON_GPU, reason='cuDNN attention runs only on '
                               f'GPU; the backend is {jax.default_backend()!r}')


def _segments():
  """Packed rows: segments of 30, 35, 15 and of 7, 50, 23 tokens."""
  rows = [[30, 35, 15], [7, 50, 23]]
  return np.stack([np.repeat(np.arange(1, len(r) + 1), r) for r in rows]).astype(np.int32)


def _padding():
  """Row 0: 19 trailing pad keys. Row 1: 5 leading pad keys, so its first 5
  queries see no key at all (the causal mask and padding leave nothing)."""
  pad = np.ones((B, L), np.int32)
  pad[0, L - 19:] = 0
  pad[1, :5] = 0
  return pad


MASKS = {
    'none': lambda: (None, None),
    'segments': lambda: (_segments(), None),
    'padding': lambda: (None, _padding()),
    'segments_and_padding': lambda: (_segments(), _padding()),
}


def _blockwise(q, k, v, mask):
  # Blocks of 32 over L = 80: two whole blocks and a partial one.
  return attention_lib.blockwise_causal_attention(q, k, v, mask, H ** -0.5, block=32)


def _xla(q, k, v, mask):
  return attention_lib.attend(q, k, v, mask, implementation='xla')


def _cudnn(q, k, v, mask):
  return attention_lib.attend(q, k, v, mask, implementation='cudnn')


IMPLEMENTATIONS = {
    'blockwise': _blockwise,
    'xla': _xla,
    'cudnn': pytest.param(_cudnn, marks=needs_gpu),
}


@functools.cache
def _jitted(name):
  fn = {'blockwise': _blockwise, 'xla': _xla, 'cudnn': _cudnn}[name]
  return jax.jit(fn, compiler_options=FAST_COMPILE if not ON_GPU else None)


def _qkv(kv_heads, seed=0):
  rng = np.random.default_rng(seed)
  # Scores of O(1) (scale 2): softmax neither flat nor one-hot.
  q = 2.0 * rng.standard_normal((B, L, N, H))
  k = rng.standard_normal((B, L, kv_heads, H))
  v = rng.standard_normal((B, L, kv_heads, H))
  return q, k, v


def _check(name, kv_heads, mask_name, dtype, rtol, atol):
  q, k, v = _qkv(kv_heads)
  segment_ids, padding = MASKS[mask_name]()
  allowed = np_allowed(segment_ids, padding)
  # The mask as data, the way the decoder builds it from a batch.
  mask = AttentionMask(
      causal=True,
      q_segment_ids_BxT=None if segment_ids is None else jnp.asarray(segment_ids),
      kv_segment_ids_BxS=None if segment_ids is None else jnp.asarray(segment_ids),
      kv_valid_BxS=None if padding is None else jnp.asarray(padding))
  got = _jitted(name)(*(jnp.asarray(x, dtype) for x in (q, k, v)), mask)
  got = np.asarray(got, np.float64)
  assert got.shape == (B, L, N, H)
  # Rows with no key to see carry no weight in a loss, but must stay finite:
  # 0 * NaN would still poison the loss sum.
  assert np.all(np.isfinite(got))
  # The reference sees the inputs as rounded to `dtype`.
  rounded = (np.asarray(jnp.asarray(x, dtype), np.float64) for x in (q, k, v))
  want, has_key = np_attention(*rounded, allowed)
  if mask_name.endswith('padding'):
    assert not has_key.all()  # the fully masked rows really are there
  np.testing.assert_allclose(got[has_key], want[has_key], rtol=rtol, atol=atol)


@pytest.mark.parametrize('mask_name', list(MASKS))
@pytest.mark.parametrize('kv_heads', [8, 2, 1], ids=['mha', 'gqa', 'mqa'])
@pytest.mark.parametrize('name', ['blockwise', 'xla'])
def test_float32_matches_numpy(name, kv_heads, mask_name):
  _check(name, kv_heads, mask_name, jnp.float32, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mask_name', ['none', 'segments_and_padding'])
@pytest.mark.parametrize('name', ['blockwise', 'xla',
                                  pytest.param('cudnn', marks=needs_gpu)])
def test_bfloat16_matches_numpy(name, mask_name):
  """bf16 inputs (fp32 softmax inside): within bf16 rounding of the output."""
  _check(name, 2, mask_name, jnp.bfloat16, rtol=2e-2, atol=2e-2)


def test_blockwise_default_block_size_matches_numpy():
  """The block size the model uses (CAUSAL_BLOCK = 64; L = 80: one whole
  block and one partial)."""
  q, k, v = _qkv(2, seed=1)
  allowed = np_allowed(_segments(), _padding())
  run = jax.jit(attention_lib.blockwise_causal_attention, static_argnums=4,
                compiler_options=FAST_COMPILE)
  segments = jnp.asarray(_segments())
  mask = AttentionMask(causal=True, q_segment_ids_BxT=segments, kv_segment_ids_BxS=segments,
                       kv_valid_BxS=jnp.asarray(_padding()))
  got = np.asarray(run(*(jnp.asarray(x, jnp.float32) for x in (q, k, v)), mask, H ** -0.5))
  want, has_key = np_attention(q, k, v, allowed)
  np.testing.assert_allclose(got[has_key], want[has_key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kv_heads', [8, 2], ids=['mha', 'gqa'])
def test_blockwise_gradients_match_dense_xla(kv_heads):
  """d(loss)/d(q, k, v) of the blockwise kernel (blocks of 32, packed and padded
  rows) against XLA's dense jax.nn.dot_product_attention with the same mask:
  the kernel's row layout (G query heads as rows of one matmul) must be exact
  backwards too. Rows that see no key are left out of the loss (both give 0 there)."""
  q, k, v = (jnp.asarray(x, jnp.float32) for x in _qkv(kv_heads, seed=2))
  segments = jnp.asarray(_segments())
  mask = AttentionMask(causal=True, q_segment_ids_BxT=segments, kv_segment_ids_BxS=segments,
                       kv_valid_BxS=jnp.asarray(_padding()))
  _, has_key = np_attention(*_qkv(kv_heads, seed=2), np_allowed(_segments(), _padding()))
  weights_BxLxN = jnp.asarray(has_key, jnp.float32)[..., None] * jnp.cos(jnp.arange(N))

  def loss(fn):
    return lambda q, k, v: jnp.sum(fn(q, k, v, mask) * weights_BxLxN[..., None])

  def grads(fn):
    return jax.jit(jax.grad(loss(fn), argnums=(0, 1, 2)), compiler_options=FAST_COMPILE)(q, k, v)

  got = grads(_blockwise)
  want = grads(lambda q, k, v, m: jax.nn.dot_product_attention(
      q, k, v, mask=m.dense(L, L), implementation='xla'))
  for name, g, w in zip('qkv', got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-5,
                               err_msg=f'd loss / d {name}')


# ------------------------------------------------- through the model config

SEQ, VOCAB = 16, 61


def _decoder(style, attention, dtype='float32'):
  m = tiny_model_cfg(style)
  # Larger weights than the 0.02 init, so attention is far from uniform.
  m.update(attention=attention, init_std=0.4, dtype=dtype)
  return build_model(m, VOCAB)


def _spy(monkeypatch):
  """Records which implementation each attention call takes."""
  calls = []
  xla_attention = jax.nn.dot_product_attention
  blockwise = attention_lib.blockwise_causal_attention

  def dot_product_attention(*args, implementation=None, **kwargs):
    calls.append(implementation or 'jax picks')
    return xla_attention(*args, implementation=implementation, **kwargs)

  def blockwise_spy(*args, **kwargs):
    calls.append('blockwise')
    return blockwise(*args, **kwargs)

  monkeypatch.setattr(jax.nn, 'dot_product_attention', dot_product_attention)
  monkeypatch.setattr(attention_lib, 'blockwise_causal_attention', blockwise_spy)
  return calls


def _inputs():
  rng = np.random.default_rng(3)
  tokens = rng.integers(0, VOCAB, (2, SEQ)).astype(np.int32)
  segment_ids = np.stack([np.repeat([1, 2], [6, 10]), np.repeat([1, 2, 3], [9, 4, 3])])
  positions = np.concatenate([np.arange(n) for n in [6, 10, 9, 4, 3]]).reshape(2, SEQ)
  padding = np.ones((2, SEQ), np.int32)
  padding[1, -3:] = 0  # the third segment of row 1 is padding of its own
  return tokens, positions.astype(np.int32), segment_ids.astype(np.int32), padding


# What each `model.attention` value must run on this backend.
EXPECTED_CALL = {'auto': {'cpu': 'blockwise', 'gpu': 'xla'}.get(
                     jax.default_backend(), 'xla'),  # gpu fp32: XLA (cuDNN needs bf16)
                 'xla': 'xla'}


@pytest.mark.parametrize('style', ['gpt', 'llama'])
@pytest.mark.parametrize('attention', ['auto', 'xla'])
def test_decoder_with_each_attention_setting_matches_numpy(monkeypatch, style,
                                                           attention):
  """Packed segments, a padding mask, GQA (llama) and biases (gpt), through
  Decoder: the logits of the real tokens match the NumPy decoder, and the
  implementation that ran is the one the setting selects."""
  calls = _spy(monkeypatch)
  model, cfg = _decoder(style, attention)
  tokens, positions, segment_ids, padding = _inputs()
  init = jax.jit(model.init, compiler_options=FAST_COMPILE)  # eager: slow
  params = jax.tree.map(np.asarray, nn.meta.unbox(
      init(jax.random.PRNGKey(0), tokens)['params']))
  calls.clear()  # init ran the model too
  got = np.asarray(jax.jit(model.apply, compiler_options=FAST_COMPILE)(
      {'params': params}, tokens, positions_BxL=positions,
      segment_ids_BxL=segment_ids, padding_mask_BxL=padding))
  assert calls == [EXPECTED_CALL[attention]] * cfg.num_layers
  want = np_decoder(params, cfg, tokens, positions, segment_ids, padding)
  real = padding.astype(bool)  # padded queries see only padded keys: no reference
  assert np.all(np.isfinite(got)) and np.std(want[real]) > 0.3
  np.testing.assert_allclose(got[..., :VOCAB][real], want[real], rtol=1e-4, atol=1e-4)


@needs_gpu
def test_decoder_cudnn_bfloat16_close_to_float32_xla():
  """`cudnn` (bf16, no mask: cuDNN flash attention) against the fp32 XLA model."""
  tokens, *_ = _inputs()
  model, _ = _decoder('llama', 'cudnn', dtype='bfloat16')
  params = model.init(jax.random.PRNGKey(0), tokens)['params']
  ref_model, _ = _decoder('llama', 'xla')
  got = np.asarray(jax.jit(model.apply)({'params': params}, tokens))
  want = np.asarray(jax.jit(ref_model.apply)({'params': params}, tokens))
  scale = np.std(want[..., :VOCAB])
  assert np.abs(got - want)[..., :VOCAB].max() < 0.25 * scale
