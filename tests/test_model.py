"""The decoder against references computed another way: a NumPy forward pass
written from the param tree, NumPy RoPE, equivalent configurations (GQA vs
repeated-KV MHA, scan vs unrolled, remat vs none, packed vs alone)."""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.models import build_model
from lm_jax.models.positions import apply_rope
from tests.numpy_reference import np_decoder, np_rope
from tests.sharded_setup import tiny_model_cfg

VOCAB, SEQ = 61, 16
STYLES = ['gpt', 'llama']
# Compiling dominates these tests on CPU; XLA's backend optimisations halve it
# and do not matter for models this small.
FAST_COMPILE = {'xla_backend_optimization_level': 0,
                'xla_llvm_disable_expensive_passes': True}


# ----------------------------------------------------------------- helpers

def _model(style, **overrides):
  m = tiny_model_cfg(style)
  m.update(overrides)
  return build_model(m, VOCAB)


@functools.cache
def _params(style, seed=0):
  """Params with O(1) random values (init_std=0.02 makes every block nearly the
  identity, which would hide mistakes): kernels ~ N(0, 1/fan_in) scaled up,
  norm scales ~ 1 + noise, biases ~ noise."""
  model, _ = _model(style)
  shapes = nn.meta.unbox(jax.eval_shape(
      model.init, jax.random.PRNGKey(0), np.zeros((1, SEQ), np.int32))['params'])
  rng = np.random.default_rng(seed)

  def fill(path, s):
    name = jax.tree_util.keystr(path)
    if 'scale' in name:
      x = 1.0 + 0.3 * rng.standard_normal(s.shape)
    elif 'bias' in name:
      x = 0.3 * rng.standard_normal(s.shape)
    elif 'embedding' in name:
      x = 0.5 * rng.standard_normal(s.shape)
    else:  # kernels [in, ...]; attention's out kernel is [heads, head_dim, D]
      fan_in = s.shape[0] * s.shape[1] if "'out'" in name else s.shape[0]
      x = 1.5 * rng.standard_normal(s.shape) / np.sqrt(fan_in)
    return x.astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _tokens(seed=0, batch=2, seq=SEQ):
  rng = np.random.default_rng(seed)
  return rng.integers(0, VOCAB, (batch, seq)).astype(np.int32)


@functools.cache
def _apply_fn(style, **overrides):
  model, _ = _model(style, **overrides)
  return jax.jit(model.apply, static_argnames='deterministic',
                 compiler_options=FAST_COMPILE)


def _logits(style, params, tokens, **kwargs):
  return np.asarray(_apply_fn(style)({'params': params}, tokens, **kwargs))


# ------------------------------------------------------------- the tests

@pytest.mark.parametrize('style', STYLES)
def test_forward_matches_numpy_reference(style):
  _, cfg = _model(style)
  if style == 'gpt':  # the GPT-2 features the reference must exercise
    assert cfg.use_bias and cfg.tie_embeddings and cfg.position == 'learned'
  else:
    assert cfg.num_kv_heads < cfg.num_heads and not cfg.tie_embeddings
  params = _params(style)
  tokens = _tokens()
  got = _logits(style, params, tokens)
  assert got.dtype == np.float32 and got.shape == (2, SEQ, cfg.padded_vocab_size)
  want = np_decoder(params, cfg, tokens)
  assert np.std(want) > 0.5  # the params really make non-trivial logits
  np.testing.assert_allclose(got[..., :VOCAB], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('style', STYLES)
def test_causal(style):
  params = _params(style)
  tokens = _tokens(1)
  base = _logits(style, params, tokens)
  for t in [0, 5, SEQ - 2]:
    changed = tokens.copy()
    changed[:, t + 1:] = (changed[:, t + 1:] + 7) % VOCAB
    logits = _logits(style, params, changed)
    np.testing.assert_allclose(logits[:, :t + 1], base[:, :t + 1],
                               rtol=1e-6, atol=1e-6)
    assert not np.allclose(logits[:, t + 1:], base[:, t + 1:], atol=1e-3)


def test_padded_vocab_gets_no_probability():
  _, cfg = _model('gpt')
  assert cfg.padded_vocab_size > cfg.vocab_size
  logits = _logits('gpt', _params('gpt'), _tokens())
  np.testing.assert_array_equal(logits[..., VOCAB:], -1e9)
  probs = np.asarray(jax.nn.softmax(logits, axis=-1), np.float64)
  np.testing.assert_allclose(probs[..., :VOCAB].sum(-1), 1.0, rtol=1e-6)
  assert np.all(probs[..., VOCAB:] == 0)


def test_apply_rope_matches_complex_rotation():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 7, 3, 8)).astype(np.float32)
  positions = np.stack([np.arange(7), np.arange(7) * 13 + 100]).astype(np.int32)
  for theta in [10000.0, 500.0]:
    got = np.asarray(apply_rope(jnp.asarray(x), positions, theta))
    np.testing.assert_allclose(got, np_rope(x, positions, theta), rtol=1e-4,
                               atol=1e-4)
  # Position 0 is the identity; norms are kept.
  zero = np.zeros((2, 7), np.int32)
  np.testing.assert_allclose(np.asarray(apply_rope(x, zero, 1e4)), x, atol=1e-7)
  np.testing.assert_allclose(np.linalg.norm(got, axis=-1),
                             np.linalg.norm(x, axis=-1), rtol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
  rng = np.random.default_rng(1)
  q = rng.standard_normal((1, 1, 1, 16)).astype(np.float32)
  k = rng.standard_normal((1, 1, 1, 16)).astype(np.float32)

  def score(m, n):
    qm = apply_rope(q, np.array([[m]], np.int32), 10000.0)
    kn = apply_rope(k, np.array([[n]], np.int32), 10000.0)
    return float(jnp.sum(qm * kn))

  for m, n in [(3, 1), (10, 10), (2, 9)]:
    for shift in [1, 7, 40]:
      np.testing.assert_allclose(score(m + shift, n + shift), score(m, n),
                                 rtol=1e-4, atol=1e-4)
  assert abs(score(3, 1) - score(4, 1)) > 1e-3  # but it does depend on m - n


def test_gqa_equals_mha_with_repeated_kv():
  _, cfg = _model('llama')
  rep = cfg.num_heads // cfg.num_kv_heads
  assert rep > 1
  params = _params('llama')
  # k/v kernels [D, K, H] -> [D, N, H]: query head n reads kv head n // rep.
  mha_params = jax.tree_util.tree_map_with_path(
      lambda path, x: np.repeat(x, rep, axis=1)
      if any(getattr(k, 'key', None) in ('key', 'value') for k in path) else x,
      params)
  tokens = _tokens(2)
  gqa = _logits('llama', params, tokens)
  mha_apply = _apply_fn('llama', num_kv_heads=cfg.num_heads)
  mha = np.asarray(mha_apply({'params': mha_params}, tokens))
  np.testing.assert_allclose(mha, gqa, rtol=1e-5, atol=1e-5)


def _stack_layers(params, num_layers):
  """{'layer_0': t0, 'layer_1': t1, ...} -> {'layers': stack(t_i, axis 0)}."""
  out = {k: v for k, v in params.items() if not k.startswith('layer_')}
  out['layers'] = jax.tree.map(lambda *xs: np.stack(xs),
                               *[params[f'layer_{i}'] for i in range(num_layers)])
  return out


def _loss(apply_fn, params, tokens):
  logits = apply_fn({'params': params}, tokens[:, :-1])
  logp = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], -1))


@functools.cache
def _loss_and_grads_fn(style, **overrides):
  model, _ = _model(style, **overrides)
  return jax.jit(jax.value_and_grad(functools.partial(_loss, model.apply)),
                 compiler_options=FAST_COMPILE)


@pytest.mark.parametrize('style', STYLES)
def test_scan_layers_equals_unrolled(style):
  _, cfg = _model(style)
  params = _params(style)
  stacked = _stack_layers(params, cfg.num_layers)
  scan_model, _ = _model(style, scan_layers=True)
  # The scanned model's own param tree has exactly the restacked structure.
  shapes = jax.eval_shape(scan_model.init, jax.random.PRNGKey(0),
                          np.zeros((1, SEQ), np.int32))['params']
  assert jax.tree.structure(nn.meta.unbox(shapes)) == jax.tree.structure(stacked)
  tokens = _tokens(3)
  scan_logits = _apply_fn(style, scan_layers=True)({'params': stacked}, tokens)
  np.testing.assert_allclose(scan_logits, _logits(style, params, tokens),
                             rtol=1e-5, atol=1e-5)
  if style == 'llama':  # gradients too (one style: compiles dominate the time)
    tokens = _tokens(3, seq=SEQ + 1)
    loss, grads = _loss_and_grads_fn(style)(params, tokens)
    scan_loss, scan_grads = _loss_and_grads_fn(style, scan_layers=True)(
        stacked, tokens)
    np.testing.assert_allclose(scan_loss, loss, rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        scan_grads, _stack_layers(grads, cfg.num_layers))


@pytest.mark.parametrize('style,remat,scan', [
    ('gpt', 'full', False), ('llama', 'dots_saveable', True)])
def test_remat_changes_nothing(style, remat, scan):
  params = _params(style)
  if scan:
    params = _stack_layers(params, 2)
  tokens = _tokens(4, seq=SEQ + 1)
  loss, grads = _loss_and_grads_fn(style, scan_layers=scan)(params, tokens)
  r_loss, r_grads = _loss_and_grads_fn(style, scan_layers=scan, remat=remat)(
      params, tokens)
  np.testing.assert_allclose(r_loss, loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               r_grads, grads)


@pytest.mark.parametrize('style', STYLES)
def test_packed_segment_equals_segment_alone(style):
  params = _params(style)
  tokens = _tokens(5)
  starts = [6, 11]  # where the second segment starts in each row
  segment_ids = np.stack([(np.arange(SEQ) >= s).astype(np.int32) + 1
                          for s in starts])
  positions = np.stack([np.where(np.arange(SEQ) >= s, np.arange(SEQ) - s,
                                 np.arange(SEQ)) for s in starts]).astype(np.int32)
  packed = _logits(style, params, tokens, positions_BxL=positions,
                   segment_ids_BxL=segment_ids)
  # Each segment alone, left-aligned in a row of filler (causality, tested
  # above, makes the filler irrelevant; one shape means one compile).
  filler = _tokens(9)
  for b, s in enumerate(starts):
    alone = filler.copy()
    alone[0, :s] = tokens[b, :s]
    alone[1, :SEQ - s] = tokens[b, s:]
    logits = _logits(style, params, alone)
    np.testing.assert_allclose(packed[b, :s], logits[0, :s], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(packed[b, s:], logits[1, :SEQ - s], rtol=1e-5,
                               atol=1e-5)
  # And the NumPy reference agrees on the packed row itself.
  _, cfg = _model(style)
  want = np_decoder(params, cfg, tokens, positions, segment_ids)
  np.testing.assert_allclose(packed[..., :VOCAB], want, rtol=1e-4, atol=1e-4)


def test_dropout():
  params = _params('gpt')
  tokens = _tokens(6)
  apply = _apply_fn('gpt', dropout=0.3)
  run = lambda det, seed=0: np.asarray(apply(
      {'params': params}, tokens, deterministic=det,
      rngs={'dropout': jax.random.PRNGKey(seed)}))
  # deterministic: repeatable and equal to the same model without dropout
  no_dropout = _logits('gpt', params, tokens)
  np.testing.assert_array_equal(run(True, 0), run(True, 1))
  np.testing.assert_allclose(run(True), no_dropout, rtol=1e-6, atol=1e-6)
  # training: a function of the rng
  a, a2, b = run(False, 0), run(False, 0), run(False, 1)
  np.testing.assert_array_equal(a, a2)
  assert not np.allclose(a, b, atol=1e-3)
  assert not np.allclose(a, no_dropout, atol=1e-3)


@pytest.mark.parametrize('style', STYLES)
def test_bfloat16_compute_close_to_float32(style):
  model, _ = _model(style, dtype='bfloat16')
  params = _params(style)
  tokens = _tokens(7)
  init = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens)['params']
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nn.meta.unbox(init)))
  got = np.asarray(_apply_fn(style, dtype='bfloat16')({'params': params}, tokens))
  want = _logits(style, params, tokens)
  assert got.dtype == np.float32
  real = np.s_[..., :VOCAB]
  err = np.abs(got[real] - want[real])
  scale = np.std(want[real])
  assert err.max() > 0  # bf16 really was used
  # (measured: mean 0.7% / 1.3%, max 4% / 9% of the logits' std, gpt / llama)
  assert err.mean() < 0.03 * scale and err.max() < 0.25 * scale, (
      err.mean() / scale, err.max() / scale)
  # Every matmul runs on bf16 operands (not just some of them) ...
  jaxpr = jax.make_jaxpr(lambda p, x: model.apply({'params': p}, x))(params, tokens)
  dots = list(_dot_generals(jaxpr.jaxpr))
  assert len(dots) >= 1 + 7 * 2  # the head; q, k, v, out, 2 attention, >= 1 MLP
  assert all(v.aval.dtype == jnp.bfloat16 for e in dots for v in e.invars)
  # ... and the gradients of the fp32 params are fp32 (traced, not compiled).
  _, grads = jax.eval_shape(_loss_and_grads_fn(style, dtype='bfloat16'),
                            params, _tokens(7, seq=SEQ + 1))
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))


def _dot_generals(jaxpr):
  """dot_general equations of a jaxpr and of the jaxprs nested in it."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'dot_general':
      yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else [value]:
        sub = getattr(sub, 'jaxpr', sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(sub, 'eqns'):
          yield from _dot_generals(sub)


def _import_hf():
  """torch and transformers (the `hf` extra). CI installs it, so there a
  missing one is a failure, not a silent skip."""
  if os.environ.get('CI'):
    import torch  # pylint: disable=g-import-not-at-top
    import transformers  # pylint: disable=g-import-not-at-top
    return torch, transformers
  why = "needs the hf extra: pip install -e '.[test,hf]'"
  return (pytest.importorskip('torch', reason=why),
          pytest.importorskip('transformers', reason=why))


def test_matches_huggingface_gpt2(monkeypatch):
  """The GPT style is GPT-2: a tiny random GPT-2 built from a transformers
  config (no hub, no download) with our weights gives the same fp32 logits."""
  monkeypatch.setenv('HF_HUB_OFFLINE', '1')  # nothing may be fetched
  torch, transformers = _import_hf()
  _, cfg = _model('gpt')
  params = jax.tree.map(np.asarray, _params('gpt'))
  hf_cfg = transformers.GPT2Config(
      vocab_size=VOCAB, n_positions=cfg.max_len, n_embd=cfg.d_model,
      n_layer=cfg.num_layers, n_head=cfg.num_heads, n_inner=cfg.mlp_dim,
      activation_function='gelu_new', layer_norm_epsilon=cfg.norm_eps,
      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True)
  hf = transformers.GPT2LMHeadModel(hf_cfg).to(torch.float32).eval()
  D = cfg.d_model
  ln = lambda p: next(iter(p.values()))
  sd = {'transformer.wte.weight': params['embed']['embedding'][:VOCAB],
        'transformer.wpe.weight': params['pos_embed']['embedding'],
        'transformer.ln_f.weight': ln(params['final_norm'])['scale'],
        'transformer.ln_f.bias': ln(params['final_norm'])['bias']}
  for i in range(cfg.num_layers):
    blk, pre = params[f'layer_{i}'], f'transformer.h.{i}.'
    att = blk['attn']
    sd.update({
        pre + 'ln_1.weight': ln(blk['attn_norm'])['scale'],
        pre + 'ln_1.bias': ln(blk['attn_norm'])['bias'],
        pre + 'ln_2.weight': ln(blk['mlp_norm'])['scale'],
        pre + 'ln_2.bias': ln(blk['mlp_norm'])['bias'],
        # Conv1D weights are [in, out]; heads are head-major within D.
        pre + 'attn.c_attn.weight': np.concatenate(
            [att[n]['kernel'].reshape(D, D) for n in ('query', 'key', 'value')], 1),
        pre + 'attn.c_attn.bias': np.concatenate(
            [att[n]['bias'].reshape(D) for n in ('query', 'key', 'value')]),
        pre + 'attn.c_proj.weight': att['out']['kernel'].reshape(D, D),
        pre + 'attn.c_proj.bias': att['out']['bias'],
        pre + 'mlp.c_fc.weight': blk['mlp']['up']['kernel'],
        pre + 'mlp.c_fc.bias': blk['mlp']['up']['bias'],
        pre + 'mlp.c_proj.weight': blk['mlp']['down']['kernel'],
        pre + 'mlp.c_proj.bias': blk['mlp']['down']['bias'],
    })
  state = hf.state_dict()
  with torch.no_grad():
    for name, value in sd.items():
      assert state[name].shape == value.shape, name
      state[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
    tokens = _tokens(8)
    want = hf(torch.from_numpy(tokens).long()).logits.numpy()
  got = _logits('gpt', _params('gpt'), tokens)
  np.testing.assert_allclose(got[..., :VOCAB], want, rtol=1e-4, atol=1e-4)
