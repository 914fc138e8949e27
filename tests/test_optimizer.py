"""Schedules against nanoGPT's get_lr; the weight-decay mask against hand-written
lists of param paths; AdamW (decay mask, global-norm clipping) against a NumPy
implementation written from the AdamW paper's update; one real train step with
zero gradients (decay only) on scanned and pipelined models."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.models import build_model
from lm_jax.models.registry import get_family, model_fns
from lm_jax.parallel.mesh import batch_sharding, make_mesh, replicated
from lm_jax.parallel.rules import rules_for_mesh
from lm_jax.train.optimizer import decay_mask, make_optimizer, make_schedule
from lm_jax.train.state import create_train_state
from lm_jax.train.step import jit_train_step
from tests.decay_paths import (LAYOUTS, decayed_paths, path_str,
                               undecayed_paths)
from tests.sharded_setup import BATCH, SEQ, VOCAB, random_batch, tiny_model_cfg

LR, WARMUP, DECAY, TOTAL, MIN_RATIO = 3e-3, 10, 50, 80, 0.1
STEPS = [0, 1, 5, 9, 10, 11, 23, 30, 49, 50, 51, 79, 200]
FAST_COMPILE = {'xla_backend_optimization_level': 0,
                'xla_llvm_disable_expensive_passes': True}


def _opt_cfg(**kw):
  o = base_config().optimizer
  o.update(dict(lr=LR, warmup_steps=WARMUP, decay_steps=DECAY,
                min_lr_ratio=MIN_RATIO))
  o.update(kw)
  return o


# ------------------------------------------------------------- schedules

def nanogpt_get_lr(it, learning_rate, warmup_iters, lr_decay_iters, min_lr):
  """karpathy/nanoGPT train.py get_lr, as published (globals made arguments)."""
  # 1) linear warmup for warmup_iters steps
  if it < warmup_iters:
    return learning_rate * (it + 1) / (warmup_iters + 1)
  # 2) if it > lr_decay_iters, return min learning rate
  if it > lr_decay_iters:
    return min_lr
  # 3) in between, use cosine decay down to min learning rate
  decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
  assert 0 <= decay_ratio <= 1
  coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # coeff ranges 0..1
  return min_lr + coeff * (learning_rate - min_lr)


def _expected_lr(kind, t, warmup=WARMUP, decay=DECAY):
  """nanoGPT's cosine; linear and constant: the same warmup and phases, with
  coeff = 1 - decay_ratio (linear) or 1 (constant)."""
  min_lr = LR * MIN_RATIO
  if kind == 'cosine':
    return nanogpt_get_lr(t, LR, warmup, decay, min_lr)
  if t < warmup:
    return LR * (t + 1) / (warmup + 1)
  if kind == 'constant':
    return LR
  if t > decay:
    return min_lr
  return min_lr + (1 - (t - warmup) / (decay - warmup)) * (LR - min_lr)


@pytest.mark.parametrize('kind', ['cosine', 'linear', 'constant'])
def test_schedule_matches_nanogpt(kind):
  schedule = make_schedule(_opt_cfg(schedule=kind), TOTAL)
  for t in STEPS:
    np.testing.assert_allclose(float(schedule(t)), _expected_lr(kind, t),
                               rtol=1e-5, atol=1e-9, err_msg=f'step {t}')


@pytest.mark.parametrize('kind', ['cosine', 'linear', 'constant'])
def test_first_update_has_nonzero_lr(kind):
  """Update 0 uses lr / (warmup + 1) (nanoGPT), not 0: no wasted step."""
  schedule = make_schedule(_opt_cfg(schedule=kind), TOTAL)
  assert float(schedule(0)) == pytest.approx(LR / (WARMUP + 1), rel=1e-6)
  assert float(schedule(jnp.zeros((), jnp.int32))) > 0  # as optax's count


@pytest.mark.parametrize('kind', ['cosine', 'linear'])
def test_decay_steps_zero_means_total_steps(kind):
  schedule = make_schedule(_opt_cfg(schedule=kind, decay_steps=0), TOTAL)
  for t in STEPS:
    np.testing.assert_allclose(float(schedule(t)),
                               _expected_lr(kind, t, decay=TOTAL),
                               rtol=1e-5, atol=1e-9, err_msg=f'step {t}')


@pytest.mark.parametrize('kind', ['cosine', 'linear', 'constant'])
def test_schedule_without_warmup_starts_at_peak(kind):
  schedule = make_schedule(_opt_cfg(schedule=kind, warmup_steps=0), TOTAL)
  assert float(schedule(0)) == pytest.approx(LR)
  for t in STEPS:
    np.testing.assert_allclose(float(schedule(t)), _expected_lr(kind, t, warmup=0),
                               rtol=1e-5, atol=1e-9, err_msg=f'step {t}')


# ------------------------------------------------------------ decay mask

def _model(style, layout):
  scan, stages, _ = LAYOUTS[layout]
  m = tiny_model_cfg(style)
  m.scan_layers = scan
  mesh_cfg = ml_collections.ConfigDict(dict(stage=stages, pipeline_microbatches=2))
  return build_model(m, VOCAB, mesh_cfg)


@functools.cache
def _param_shapes(style='gpt', layout='unrolled'):
  """The shapes of a real param tree (biases, norm scales, 2-D and 3-D kernels)."""
  model, _ = _model(style, layout)
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                         np.zeros((2, 4), np.int32))['params']
  return nn.meta.unbox(boxed)


@pytest.mark.parametrize('layout', list(LAYOUTS))
@pytest.mark.parametrize('style', ['gpt', 'llama'])
def test_decay_mask_by_what_a_param_is(style, layout):
  decayed = decayed_paths(style, layout)
  not_decayed = undecayed_paths(style, layout)
  mask = decay_mask(_param_shapes(style, layout))
  got = {path_str(path): on for path, on in
         jax.tree_util.tree_leaves_with_path(mask)}
  assert set(got) == decayed | not_decayed  # the lists cover the whole tree
  assert {p for p, on in got.items() if on} == decayed
  assert {p for p, on in got.items() if not on} == not_decayed


def test_decay_mask_refuses_a_param_it_has_no_rule_for():
  with pytest.raises(ValueError, match="'gamma'"):
    decay_mask({'block': {'kernel': np.zeros((2, 2)), 'gamma': np.zeros(2)}})


def _model_params(seed=0, style='gpt', layout='unrolled'):
  """Random values (non-trivial biases and scales too, so "unchanged" means
  something) in the model's param tree."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda s: (1.0 + 0.5 * rng.standard_normal(s.shape)).astype(np.float32),
      _param_shapes(style, layout))


def _decayed_flags(style, layout, params):
  """The hand-written mask, in the order of jax.tree.leaves(params)."""
  decayed = decayed_paths(style, layout)
  return [path_str(path) in decayed
          for path, _ in jax.tree_util.tree_leaves_with_path(params)]


def _np_adamw(params, grads_seq, cfg, decayed):
  """Clip by global norm, Adam with bias correction, decoupled decay of the
  `decayed` leaves, lr from nanoGPT's schedule."""
  p = [np.asarray(x, np.float64) for x in params]
  m = [np.zeros_like(x) for x in p]
  v = [np.zeros_like(x) for x in p]
  for t, grads in enumerate(grads_seq):
    g = [np.asarray(x, np.float64) for x in grads]
    if cfg.grad_clip > 0:
      norm = math.sqrt(sum(np.sum(x ** 2) for x in g))
      if norm > cfg.grad_clip:
        g = [x * cfg.grad_clip / norm for x in g]
    lr = _expected_lr(cfg.schedule, t, warmup=cfg.warmup_steps,
                      decay=cfg.decay_steps)
    for i in range(len(p)):
      m[i] = cfg.b1 * m[i] + (1 - cfg.b1) * g[i]
      v[i] = cfg.b2 * v[i] + (1 - cfg.b2) * g[i] ** 2
      m_hat = m[i] / (1 - cfg.b1 ** (t + 1))
      v_hat = v[i] / (1 - cfg.b2 ** (t + 1))
      u = m_hat / (np.sqrt(v_hat) + cfg.eps)
      if decayed[i]:
        u = u + cfg.weight_decay * p[i]
      p[i] = p[i] - lr * u
  return p


def _run_tx(tx, params, grads_seq):
  """The steps of `tx` on `grads_seq`, in one jitted function (XLA backend
  optimisations off: compiling dominates on CPU)."""
  @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
  def run(params, grads_seq):
    state = tx.init(params)
    for grads in grads_seq:
      updates, state = tx.update(grads, state, params)
      params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params
  return run(params, grads_seq)


@pytest.mark.parametrize('style,layout', [('gpt', 'unrolled'), ('llama', 'scanned')])
@pytest.mark.parametrize('grad_clip', [0.0, 1.0])
def test_adamw_matches_numpy_reference(grad_clip, style, layout):
  """Several steps through warmup, with gradients above and below the clip."""
  cfg = _opt_cfg(schedule='cosine', weight_decay=0.1, grad_clip=grad_clip,
                 warmup_steps=2, eps=1e-6)
  tx, _ = make_optimizer(cfg, TOTAL)
  params = _model_params(0, style, layout)
  leaves, treedef = jax.tree.flatten(params)
  rng = np.random.default_rng(1)
  grads_seq = []
  for scale in [5.0, 0.001, 50.0, 0.01]:  # global norms well above / below 1
    g = [(scale * rng.standard_normal(x.shape) / math.sqrt(x.size)).astype(np.float32)
         for x in leaves]
    grads_seq.append(jax.tree.unflatten(treedef, g))
  got = jax.tree.leaves(_run_tx(tx, params, grads_seq))
  want = _np_adamw(leaves, [jax.tree.leaves(g) for g in grads_seq], cfg,
                   _decayed_flags(style, layout, params))
  for g, w, p0 in zip(got, want, leaves):
    # Compare the change of the params (the params themselves dominate).
    np.testing.assert_allclose(np.asarray(g) - p0, w - p0, rtol=1e-4,
                               atol=4e-7)  # fp32 rounding of p + u, |p| ~ 1


class _ZeroLoss:
  """An objective whose gradient is exactly 0: the update is weight decay alone."""

  def __call__(self, outputs, batch):
    zero = jnp.sum(outputs['logits']) * 0.0
    return zero, {'loss': zero}, jnp.sum(batch['weights'])


@pytest.mark.parametrize('style,layout', [('llama', 'scanned'), ('gpt', 'pipelined')])
def test_train_step_decays_kernels_not_norms(style, layout):
  """One real step (state created sharded, jitted step) with zero gradients:
  every kernel and embedding shrinks by the factor 1 - lr_0 * wd, with lr_0 =
  lr / (warmup + 1) from nanoGPT's schedule; scanned / pipelined norm scales,
  norm biases and attention biases stay as they were."""
  lr, wd, warmup = 0.05, 0.3, 4
  model, _ = _model(style, layout)
  stages = LAYOUTS[layout][1]
  mesh_shape = dict(data=1, stage=stages)
  mesh = make_mesh(mesh_shape, jax.devices()[:stages])
  rules = rules_for_mesh(mesh_shape)
  tx, schedule = make_optimizer(_opt_cfg(schedule='cosine', warmup_steps=warmup,
                                         lr=lr, weight_decay=wd), TOTAL)
  fns = model_fns(get_family('decoder'), model)
  state, shardings = create_train_state(fns, tx, jax.random.PRNGKey(0), random_batch(),
                                        mesh, rules)
  params0 = jax.tree.map(np.asarray, state.params)
  bsh = batch_sharding(mesh, rules)
  step = jit_train_step(_ZeroLoss(), 1, schedule, shardings, bsh, replicated(mesh))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    batch = {k: jax.device_put(v, bsh) for k, v in random_batch().items()}
    state, metrics = step.lower(state, batch).compile(FAST_COMPILE)(state, batch)
  lr0 = lr * 1 / (warmup + 1)
  np.testing.assert_allclose(float(metrics['lr']), lr0, rtol=1e-6)
  decayed = decayed_paths(style, layout)
  seen = set()
  for (path, p0), p1 in zip(jax.tree_util.tree_leaves_with_path(params0),
                            jax.tree.leaves(state.params)):
    name, p1 = path_str(path), np.asarray(p1)
    if name in decayed:
      np.testing.assert_allclose(p1, p0 * (1 - lr0 * wd), rtol=1e-6, atol=1e-9,
                                 err_msg=name)
      seen.add(name)
    else:
      np.testing.assert_array_equal(p1, p0, err_msg=name)
  assert seen == decayed


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
