"""Schedules against closed forms; AdamW (decay mask, global-norm clipping)
against a NumPy implementation written from the AdamW paper's update."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.models import build_model
from lm_jax.train.optimizer import make_optimizer, make_schedule
from tests.sharded_setup import tiny_model_cfg

LR, WARMUP, DECAY, TOTAL, MIN_RATIO = 3e-3, 10, 50, 80, 0.1
STEPS = [0, 1, 5, 9, 10, 11, 23, 30, 49, 50, 51, 79, 200]


def _opt_cfg(**kw):
  o = base_config().optimizer
  o.update(dict(lr=LR, warmup_steps=WARMUP, decay_steps=DECAY,
                min_lr_ratio=MIN_RATIO))
  o.update(kw)
  return o


def _closed_form(kind, t, warmup=WARMUP, decay=DECAY):
  end = LR * MIN_RATIO
  if t < warmup:
    return LR * t / warmup
  if kind == 'constant':
    return LR
  if t >= decay:
    return end
  frac = (t - warmup) / (decay - warmup)
  if kind == 'cosine':
    return end + (LR - end) * 0.5 * (1 + math.cos(math.pi * frac))
  return LR + (end - LR) * frac


@pytest.mark.parametrize('kind', ['cosine', 'linear', 'constant'])
def test_schedule_matches_closed_form(kind):
  schedule = make_schedule(_opt_cfg(schedule=kind), TOTAL)
  for t in STEPS:
    np.testing.assert_allclose(float(schedule(t)), _closed_form(kind, t),
                               rtol=1e-5, atol=1e-9, err_msg=f'step {t}')


@pytest.mark.parametrize('kind', ['cosine', 'linear'])
def test_decay_steps_zero_means_total_steps(kind):
  schedule = make_schedule(_opt_cfg(schedule=kind, decay_steps=0), TOTAL)
  for t in STEPS:
    np.testing.assert_allclose(float(schedule(t)),
                               _closed_form(kind, t, decay=TOTAL),
                               rtol=1e-5, atol=1e-9, err_msg=f'step {t}')


@pytest.mark.parametrize('kind', ['cosine', 'linear', 'constant'])
def test_schedule_without_warmup_starts_at_peak(kind):
  schedule = make_schedule(_opt_cfg(schedule=kind, warmup_steps=0), TOTAL)
  for t in STEPS:
    np.testing.assert_allclose(float(schedule(t)), _closed_form(kind, t, warmup=0),
                               rtol=1e-5, atol=1e-9, err_msg=f'step {t}')


@functools.cache
def _param_shapes():
  """The shapes of a real param tree (biases, norm scales, 2-D and 3-D kernels)."""
  model, _ = build_model(tiny_model_cfg('gpt'), 61)
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                         np.zeros((1, 4), np.int32))['params']
  return nn.meta.unbox(boxed)


def _model_params(seed=0):
  """Random values (non-trivial biases and scales too, so "unchanged" means
  something) in the model's param tree."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: (1.0 + 0.5 * rng.standard_normal(s.shape)).astype(np.float32),
      _param_shapes())


def test_weight_decay_only_on_matrices():
  lr, wd = 0.05, 0.3
  tx, _ = make_optimizer(_opt_cfg(schedule='constant', warmup_steps=0, lr=lr,
                                  weight_decay=wd, grad_clip=1.0), TOTAL)
  params = _model_params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  new = _run_tx(tx, params, [zeros])
  n_matrix = n_vector = 0
  for (path, p), q in zip(jax.tree_util.tree_leaves_with_path(params),
                          jax.tree.leaves(new)):
    p, q = np.asarray(p), np.asarray(q)
    if p.ndim >= 2:
      np.testing.assert_allclose(q, p - lr * wd * p, rtol=1e-6, atol=1e-8,
                                 err_msg=jax.tree_util.keystr(path))
      n_matrix += 1
    else:
      np.testing.assert_array_equal(q, p, err_msg=jax.tree_util.keystr(path))
      n_vector += 1
  assert n_matrix >= 10 and n_vector >= 10  # both kinds really present


def _np_adamw(params, grads_seq, cfg):
  """Clip by global norm, Adam with bias correction, decoupled masked decay."""
  p = [np.asarray(x, np.float64) for x in params]
  m = [np.zeros_like(x) for x in p]
  v = [np.zeros_like(x) for x in p]
  for t, grads in enumerate(grads_seq):
    g = [np.asarray(x, np.float64) for x in grads]
    if cfg.grad_clip > 0:
      norm = math.sqrt(sum(np.sum(x ** 2) for x in g))
      if norm > cfg.grad_clip:
        g = [x * cfg.grad_clip / norm for x in g]
    lr = _closed_form(cfg.schedule, t, warmup=cfg.warmup_steps,
                      decay=cfg.decay_steps)
    for i in range(len(p)):
      m[i] = cfg.b1 * m[i] + (1 - cfg.b1) * g[i]
      v[i] = cfg.b2 * v[i] + (1 - cfg.b2) * g[i] ** 2
      m_hat = m[i] / (1 - cfg.b1 ** (t + 1))
      v_hat = v[i] / (1 - cfg.b2 ** (t + 1))
      u = m_hat / (np.sqrt(v_hat) + cfg.eps)
      if p[i].ndim >= 2:
        u = u + cfg.weight_decay * p[i]
      p[i] = p[i] - lr * u
  return p


def _run_tx(tx, params, grads_seq):
  """The steps of `tx` on `grads_seq`, in one jitted function (XLA backend
  optimisations off: compiling dominates on CPU)."""
  @functools.partial(jax.jit, compiler_options={
      'xla_backend_optimization_level': 0,
      'xla_llvm_disable_expensive_passes': True})
  def run(params, grads_seq):
    state = tx.init(params)
    for grads in grads_seq:
      updates, state = tx.update(grads, state, params)
      params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params
  return run(params, grads_seq)


@pytest.mark.parametrize('grad_clip', [0.0, 1.0])
def test_adamw_matches_numpy_reference(grad_clip):
  """Several steps through warmup, with gradients above and below the clip."""
  cfg = _opt_cfg(schedule='cosine', weight_decay=0.1, grad_clip=grad_clip,
                 warmup_steps=2, eps=1e-6)
  tx, _ = make_optimizer(cfg, TOTAL)
  params = _model_params()
  leaves, treedef = jax.tree.flatten(params)
  rng = np.random.default_rng(1)
  grads_seq = []
  for scale in [5.0, 0.001, 50.0, 0.01]:  # global norms well above / below 1
    g = [(scale * rng.standard_normal(x.shape) / math.sqrt(x.size)).astype(np.float32)
         for x in leaves]
    grads_seq.append(jax.tree.unflatten(treedef, g))
  got = jax.tree.leaves(_run_tx(tx, params, grads_seq))
  want = _np_adamw(leaves, [jax.tree.leaves(g) for g in grads_seq], cfg)
  for g, w, p0 in zip(got, want, leaves):
    # Compare the change of the params (the params themselves dominate).
    np.testing.assert_allclose(np.asarray(g) - p0, w - p0, rtol=1e-4,
                               atol=4e-7)  # fp32 rounding of p + u, |p| ~ 1


def test_clipping_equates_huge_grads_with_clipped_grads():
  """Adam's first step is nearly scale-free, so use two steps: the second,
  huge, gradient must act exactly like its clipped version; without clipping
  it does not (so the test can tell)."""
  params = _model_params()
  leaves, treedef = jax.tree.flatten(params)
  rng = np.random.default_rng(2)
  g1 = [0.1 * rng.standard_normal(x.shape).astype(np.float32) / math.sqrt(x.size)
        for x in leaves]
  g2 = [rng.standard_normal(x.shape).astype(np.float32) for x in leaves]
  norm2 = math.sqrt(sum(float(np.sum(x.astype(np.float64) ** 2)) for x in g2))
  huge = [1e4 * x for x in g2]
  clipped = [x / norm2 for x in g2]  # global norm exactly 1 = grad_clip
  seq = lambda second: [jax.tree.unflatten(treedef, g1),
                        jax.tree.unflatten(treedef, second)]
  cfg = _opt_cfg(schedule='constant', warmup_steps=0, grad_clip=1.0)
  tx, _ = make_optimizer(cfg, TOTAL)
  a = jax.tree.leaves(_run_tx(tx, params, seq(huge)))
  b = jax.tree.leaves(_run_tx(tx, params, seq(clipped)))
  for x, y, p0 in zip(a, b, leaves):
    np.testing.assert_allclose(np.asarray(x) - p0, np.asarray(y) - p0,
                               rtol=1e-4, atol=4e-7)
  tx_off, _ = make_optimizer(_opt_cfg(schedule='constant', warmup_steps=0,
                                      grad_clip=0.0), TOTAL)
  c = jax.tree.leaves(_run_tx(tx_off, params, seq(huge)))
  assert any(not np.allclose(np.asarray(x) - p0, np.asarray(y) - p0, rtol=1e-2)
             for x, y, p0 in zip(c, b, leaves))
