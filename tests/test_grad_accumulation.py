"""Gradient accumulation: one train_step with the global batch split into
microbatches makes the same update as the whole batch at once, and both match
references: the loss of a NumPy forward pass averaged over the global batch's
weighted tokens, and the gradient of a hand-written global mean objective (plus, with optimizer.l1 /
l2, a NumPy penalty on the hand-listed params of tests/decay_paths.py).

SGD is the optimizer here on purpose: with it the change of the params is
-lr * gradient, so the gradient is checked exactly (Adam's first step is close
to lr * sign(gradient) and would hide a wrongly scaled gradient)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.models import build_model
from lm_jax.parallel.mesh import batch_sharding, make_mesh, replicated
from lm_jax.parallel.rules import rules_for_mesh
from lm_jax.models.registry import get_family, model_fns
from lm_jax.objectives.cross_entropy import CrossEntropy
from lm_jax.train.optimizer import weight_penalty
from lm_jax.train.state import state_shardings
from lm_jax.train.step import jit_train_step
from tests.decay_paths import decayed_paths, path_str
from tests.numpy_reference import np_decoder
from tests.sharded_setup import (BATCH, SEQ, VOCAB, place_batch, random_batch,
                                 sharded_state, tiny_model_cfg)

LR = 0.5
Z_LOSS = 1e-2
SINGLE = (('data', 1), ('fsdp', 1), ('tensor', 1))
SHARDED = (('data', 2), ('fsdp', 2), ('tensor', 2))
# Compiling dominates on CPU; XLA's backend optimisations don't matter here.
FAST_COMPILE = {'xla_backend_optimization_level': 0,
                'xla_llvm_disable_expensive_passes': True}


def _batch():
  """Padding that differs across microbatches (microbatch m of M holds rows
  m, m + M, ...): with M=4 they hold 5, 32, 19 and 17 weighted tokens, with
  M=2 24 and 49, so a mean of per-microbatch means would be wrong."""
  batch = random_batch(seed=3)
  w = np.ones((BATCH, SEQ), np.float32)
  w[0, 5:] = 0.0   # trailing padding
  w[4, :] = 0.0    # a fully padded row
  w[2, 10:] = 0.0
  w[3, 1:] = 0.0   # a single token
  w[6, :7] = 0.0   # leading padding
  batch['weights'] = w
  return batch


@functools.cache
def _initial_state(style):
  """create_train_state once per style (its compile is slow); host copy."""
  _, state, *_ = sharded_state(tiny_model_cfg(style), dict(SINGLE),
                               tx=optax.sgd(LR))
  return jax.tree.map(np.asarray, state)


@functools.cache
def _train_step(style, mesh_shape, num_micro, l1=0.0, l2=0.0):
  """(params before, params after, metrics) of one jit_train_step on _batch()."""
  mesh_shape = dict(mesh_shape)
  devices = jax.devices()[:int(np.prod(list(mesh_shape.values())))]
  mesh, rules = make_mesh(mesh_shape, devices), rules_for_mesh(mesh_shape)
  model, _ = build_model(tiny_model_cfg(style), VOCAB)
  tx = optax.sgd(LR)
  fns = model_fns(get_family('decoder'), model)
  shardings = state_shardings(fns, tx, _batch(), mesh, rules)
  # The same values, with this run's (static) apply_fn and tx.
  state = jax.device_put(
      _initial_state(style).replace(apply_fn=fns.apply, tx=tx), shardings)
  opt_cfg = base_config().optimizer
  opt_cfg.update(l1=l1, l2=l2)
  step = jit_train_step(CrossEntropy(vocab_size=VOCAB, z_loss=Z_LOSS), num_micro,
                        optax.constant_schedule(LR),
                        shardings, batch_sharding(mesh, rules), replicated(mesh),
                        penalty_fn=weight_penalty(opt_cfg))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    batch = place_batch(_batch(), mesh, rules)
    state, metrics = step.lower(state, batch).compile(FAST_COMPILE)(state, batch)
  assert int(state.step) == 1
  return (_initial_state(style).params, jax.tree.map(np.asarray, state.params),
          jax.device_get(metrics))


def _numpy_losses(style):
  """Global-batch mean of the token loss and of log(Z)^2, all in NumPy."""
  _, cfg = build_model(tiny_model_cfg(style), VOCAB)
  batch = _batch()
  w = batch['weights'].astype(np.float64)
  logits = np_decoder(_initial_state(style).params, cfg, batch['inputs'])
  m = logits.max(-1, keepdims=True)
  log_z = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
  target = np.take_along_axis(logits, batch['targets'][..., None], -1)[..., 0]
  return np.sum((log_z - target) * w) / w.sum(), np.sum(log_z ** 2 * w) / w.sum()


@functools.cache
def _reference_grads(style):
  """Gradient of sum_tokens w * (nll + z * logZ^2) / sum_tokens w, whole batch."""
  model, _ = build_model(tiny_model_cfg(style), VOCAB)
  batch = _batch()
  w = batch['weights']

  def objective(p):
    logits = model.apply({'params': p}, batch['inputs'])
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target = jnp.take_along_axis(logits, batch['targets'][..., None], -1)[..., 0]
    return jnp.sum(((log_z - target) + Z_LOSS * log_z ** 2) * w) / jnp.sum(w)

  grads = jax.jit(jax.grad(objective), compiler_options=FAST_COMPILE)(
      _initial_state(style).params)
  return jax.tree.map(np.asarray, grads)


def _check_metrics(style, params1, metrics):
  loss, log_z_sq = _numpy_losses(style)
  np.testing.assert_allclose(metrics['loss'], loss, rtol=1e-5)
  np.testing.assert_allclose(metrics['log_z_squared'], log_z_sq, rtol=1e-5)
  assert float(metrics['tokens']) == _batch()['weights'].sum() == 73
  np.testing.assert_allclose(metrics['lr'], LR)
  np.testing.assert_allclose(metrics['param_norm'], np.sqrt(sum(
      np.sum(np.asarray(p, np.float64) ** 2) for p in jax.tree.leaves(params1))),
      rtol=1e-5)


def _assert_same_update(params0, params1, want_delta, rtol):
  """params1 - params0 == want_delta leaf by leaf, up to rtol, 1e-5 of the
  leaf's largest change (entries whose gradient nearly cancels) and the fp32
  rounding of params0 + delta (norm scales are ~1, their changes ~1e-4).
  The key bias's gradient is 0 up to rounding (softmax ignores a per-query
  constant), hence a floor of 1e-6 of the largest change of any leaf."""
  floor = 1e-6 * max(np.abs(d).max() for d in jax.tree.leaves(want_delta))
  for (path, p0), p1, d in zip(jax.tree_util.tree_leaves_with_path(params0),
                               jax.tree.leaves(params1),
                               jax.tree.leaves(want_delta)):
    p0, p1, d = (np.asarray(x, np.float64) for x in (p0, p1, d))
    err = np.abs(p1 - p0 - d)
    bound = (rtol * np.abs(d) + 1e-5 * np.abs(d).max() + floor
             + np.spacing(np.abs(p0 + d).astype(np.float32)))
    assert np.all(err <= bound), (
        f'{jax.tree_util.keystr(path)}: {np.sum(err > bound)} of {err.size} '
        f'differ, worst error / bound {np.max(err / bound):.3g}')


@pytest.mark.parametrize('num_micro', [1, 4])
def test_update_matches_global_batch_reference(num_micro):
  params0, params1, metrics = _train_step('gpt', SINGLE, num_micro)
  _check_metrics('gpt', params1, metrics)
  grads = _reference_grads('gpt')
  _assert_same_update(params0, params1, jax.tree.map(lambda g: -LR * g, grads),
                      rtol=1e-4)
  grad_norm = np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2)
                          for g in jax.tree.leaves(grads)))
  np.testing.assert_allclose(metrics['grad_norm'], grad_norm, rtol=1e-5)


def test_microbatches_4_equal_1():
  """The two runs directly (tighter than against the reference)."""
  p0, p1, m1 = _train_step('gpt', SINGLE, 1)
  _, p4, m4 = _train_step('gpt', SINGLE, 4)
  for k in ('loss', 'log_z_squared', 'tokens', 'grad_norm', 'param_norm'):
    np.testing.assert_allclose(m4[k], m1[k], rtol=1e-6, err_msg=k)
  _assert_same_update(p0, p4, jax.tree.map(np.subtract, p1, p0), rtol=3e-5)


def test_sharded_microbatches_equal_single_device():
  """data=2, fsdp=2, tensor=2 (GQA model) with 2 microbatches == one device,
  no split."""
  p0, p1_sharded, m_sharded = _train_step('llama', SHARDED, 2)
  _, p1, m = _train_step('llama', SINGLE, 1)
  for k in ('loss', 'log_z_squared', 'tokens', 'grad_norm', 'param_norm'):
    np.testing.assert_allclose(m_sharded[k], m[k], rtol=1e-5, err_msg=k)
  _assert_same_update(p0, p1_sharded, jax.tree.map(np.subtract, p1, p0),
                      rtol=2e-4)
  _check_metrics('llama', p1_sharded, m_sharded)


L1, L2 = 2e-3, 5e-2


def _numpy_penalty(style, params):
  """(l1 * sum|w| + l2 / 2 * sum w^2, its gradient), over the hand-listed
  kernels and embeddings only, in float64."""
  decayed = decayed_paths(style, 'unrolled')
  value, grads = 0.0, {}
  for path, w in jax.tree_util.tree_leaves_with_path(params):
    w = np.asarray(w, np.float64)
    on = path_str(path) in decayed
    value += (L1 * np.abs(w).sum() + 0.5 * L2 * (w ** 2).sum()) if on else 0.0
    grads[path_str(path)] = (L1 * np.sign(w) + L2 * w) if on else np.zeros_like(w)
  return value, grads


@pytest.mark.parametrize('num_micro', [1, 4])
def test_l1_l2_penalty_matches_numpy(num_micro):
  """The penalty joins the *mean* token loss once per step: not divided by the
  73 tokens, not once per microbatch (either would change the update)."""
  params0, params1, metrics = _train_step('gpt', SINGLE, num_micro, L1, L2)
  _check_metrics('gpt', params1, metrics)  # the loss itself stays the token mean
  value, penalty_grads = _numpy_penalty('gpt', params0)
  np.testing.assert_allclose(metrics['penalty'], value, rtol=1e-5)
  grads = jax.tree_util.tree_map_with_path(
      lambda path, g: np.asarray(g, np.float64) + penalty_grads[path_str(path)],
      _reference_grads('gpt'))
  _assert_same_update(params0, params1, jax.tree.map(lambda g: -LR * g, grads),
                      rtol=1e-4)
  grad_norm = np.sqrt(sum(np.sum(g ** 2) for g in jax.tree.leaves(grads)))
  np.testing.assert_allclose(metrics['grad_norm'], grad_norm, rtol=1e-5)


def test_no_penalty_metric_when_off():
  *_, metrics = _train_step('gpt', SINGLE, 1)
  assert 'penalty' not in metrics
