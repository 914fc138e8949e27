"""Distillation: the KL objective against NumPy, the teacher seam, and a CLI run."""

import json
import os

import jax
import numpy as np
import pytest

from lm_jax.objectives.distill import Distillation
from lm_jax.objectives.kl import kl_divergence_sums
from lm_jax.objectives.teacher import TEACHER_LOGITS
from tests.run_helpers import (QUICK, logged_train_losses, run_cli, saved_params, tiny_overrides,
                               tree_digest)

B, L, V = 3, 4, 7


def _np_log_softmax(x):
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _np_kl(p_logits, q_logits, T):
  """KL(softmax(p/T) || softmax(q/T)) per position, float64."""
  lp, lq = _np_log_softmax(p_logits / T), _np_log_softmax(q_logits / T)
  return np.sum(np.exp(lp) * (lp - lq), -1)


def _case(seed=0, teacher_pad=0, student_pad=0):
  """Student/teacher logits over V real ids (+ masked padding rows), targets, weights."""
  rng = np.random.default_rng(seed)
  student = (2 * rng.standard_normal((B, L, V + student_pad))).astype(np.float32)
  teacher = (2 * rng.standard_normal((B, L, V + teacher_pad))).astype(np.float32)
  student[..., V:] = -1e9
  teacher[..., V:] = -1e9
  targets = rng.integers(0, V, (B, L)).astype(np.int32)
  weights = np.ones((B, L), np.float32)
  weights[1, 2:] = 0.0
  weights[2, 0] = 0.5
  return student, teacher, targets, weights


def test_two_outcome_example_in_nats_and_bits():
  """P = (0.5, 0.5) teacher, Q = (0.6, 0.4) student: 0.0204 nats = 0.0294 bits, by hand:
  0.5 ln(0.5/0.6) + 0.5 ln(0.5/0.4) = 0.020411; / ln 2 = 0.029447."""
  p = np.log(np.array([[[0.5, 0.5]]], np.float32))
  q = np.log(np.array([[[0.6, 0.4]]], np.float32))
  nats = float(kl_divergence_sums(q, p, np.ones((1, 1), np.float32)))
  assert round(nats, 4) == 0.0204
  assert round(nats / np.log(2), 4) == 0.0294
  # The direction matters: KL(Q || P) = 0.6 ln 1.2 + 0.4 ln 0.8 = 0.020136.
  reverse = float(kl_divergence_sums(p, q, np.ones((1, 1), np.float32)))
  assert reverse == pytest.approx(0.6 * np.log(1.2) + 0.4 * np.log(0.8), abs=2e-6)


@pytest.mark.parametrize('T', [1.0, 2.0, 4.0])
def test_t_squared_factor_on_value_and_gradient(T):
  """Value: T^2 * KL of the softened pair; gradient w.r.t. student logits:
  T^2 * (1/T) (softmax(s/T) - softmax(t/T)) = T (q_T - p_T), NumPy."""
  student, teacher, _, weights = _case(seed=1)
  got = kl_divergence_sums(student, teacher, weights, T)
  want = T ** 2 * np.sum(_np_kl(teacher, student, T) * weights)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  grad = jax.grad(lambda s: kl_divergence_sums(s, teacher, weights, T))(student)
  q_T = np.exp(_np_log_softmax(student / T))
  p_T = np.exp(_np_log_softmax(teacher / T))
  np.testing.assert_allclose(grad, T * weights[..., None] * (q_T - p_T), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('kl_weight,T,z_loss', [(0.5, 2.0, 0.0), (0.9, 1.0, 1e-2),
                                                (0.0, 3.0, 0.0), (1.0, 3.0, 0.0)])
def test_mixed_objective_matches_numpy(kl_weight, T, z_loss):
  """kl_weight * T^2 KL + (1 - kl_weight) NLL + z log(Z)^2, over the V real ids although
  the two models pad their vocabularies differently."""
  student, teacher, targets, weights = _case(seed=2, teacher_pad=5, student_pad=1)
  objective = Distillation(vocab_size=V, temperature=T, kl_weight=kl_weight, z_loss=z_loss)
  batch = {'targets': targets, 'weights': weights, TEACHER_LOGITS: teacher}
  total, sums, weight = objective({'logits': student}, batch)
  logp = _np_log_softmax(student[..., :V])
  nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
  log_z = np.log(np.exp(np.asarray(student, np.float64)).sum(-1))
  kl = T ** 2 * np.sum(_np_kl(teacher[..., :V], student[..., :V], T) * weights)
  hard = np.sum(nll * weights)
  want = kl_weight * kl + (1 - kl_weight) * hard + z_loss * np.sum(log_z ** 2 * weights)
  np.testing.assert_allclose(total, want, rtol=1e-5)
  np.testing.assert_allclose(sums['kl'], kl, rtol=1e-5)
  np.testing.assert_allclose(sums['loss'], hard, rtol=1e-5)  # loss stays the plain NLL
  assert float(weight) == weights.sum()


def test_label_smoothing_applies_to_the_hard_term():
  student, teacher, targets, weights = _case(seed=3)
  eps, w = 0.2, 0.3
  objective = Distillation(vocab_size=V, kl_weight=w, label_smoothing=eps)
  total, _, _ = objective({'logits': student},
                          {'targets': targets, 'weights': weights, TEACHER_LOGITS: teacher})
  logp = _np_log_softmax(student)
  q = np.full(logp.shape, eps / V)
  np.put_along_axis(q, targets[..., None], 1 - eps + eps / V, -1)
  smoothed = np.sum(np.sum(q * (np.log(q) - logp), -1) * weights)
  kl = np.sum(_np_kl(teacher, student, 1.0) * weights)
  np.testing.assert_allclose(total, w * kl + (1 - w) * smoothed, rtol=1e-4)


# --- end to end: a teacher trained by the CLI, a student distilled from it


@pytest.fixture(scope='module')
def teacher_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('distill') / 'teacher')
  proc = run_cli('train', '--config', QUICK,
                 *tiny_overrides(run_dir, 5, **{'checkpoint.async_save': False}))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return run_dir


def test_distillation_run_trains_and_leaves_the_teacher_alone(teacher_run):
  before = tree_digest(teacher_run)
  student = os.path.join(os.path.dirname(teacher_run), 'student')
  proc = run_cli('train', '--config', QUICK, *tiny_overrides(
      student, 10, **{'objective.name': 'distill', 'objective.teacher_run': teacher_run,
                      'objective.temperature': 2.0, 'objective.kl_weight': 0.5,
                      'model.num_layers': 1, 'train.seed': 7, 'train.log_every': 1,
                      'train.eval_every': 10, 'checkpoint.every': 10}))
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout[proc.stdout.rindex('{\n'):])  # after the metric lines
  assert np.isfinite(result['train/kl']) and result['train/kl'] > 0
  assert np.isfinite(result['eval/kl']) and np.isfinite(result['eval/bits_per_byte'])
  losses = logged_train_losses(student)
  assert sorted(losses) == list(range(1, 11))
  assert all(np.isfinite(v) for v in losses.values())
  assert np.mean([losses[s] for s in (8, 9, 10)]) < np.mean([losses[s] for s in (1, 2, 3)])
  # The teacher's run directory, params included, is byte for byte what it was.
  assert tree_digest(teacher_run) == before
  # The student's checkpoint holds the student alone: 1 layer, no teacher params.
  params, _ = saved_params(student, 10)
  assert 'layer_0' in params and 'layer_1' not in params


def test_teacher_with_another_vocabulary_is_refused(teacher_run):
  before = tree_digest(teacher_run)
  student = os.path.join(os.path.dirname(teacher_run), 'student_v320')
  proc = run_cli('train', '--config', QUICK, *tiny_overrides(
      student, 2, **{'objective.name': 'distill', 'objective.teacher_run': teacher_run,
                     'model.vocab_size': 320}))
  assert proc.returncode == 2, proc.stderr[-3000:]
  message = proc.stderr.strip().splitlines()[-1]
  assert message.startswith('error: config.objective.teacher_run=')
  assert '256 ids' in message and '320' in message
  assert 'Traceback' not in proc.stderr
  assert tree_digest(teacher_run) == before
  assert not os.path.exists(os.path.join(student, 'checkpoints'))


def test_teacher_restored_sharded_like_the_student_and_given_no_gradient(teacher_run):
  """On a data=2 fsdp=2 tensor=2 mesh: the teacher's params restore onto the student's
  shardings (same architecture), equal to the saved ones; a jitted step with the
  teacher reports the KL of the two models' logits computed outside the step."""
  import flax.linen as nn

  from lm_jax.build import build
  from lm_jax.config.loader import load_config
  from lm_jax.run import build_run
  from lm_jax.train.step import jit_train_step
  config = load_config(QUICK)
  config.mesh.update(data=2, fsdp=2, tensor=2)
  config.objective.update(name='distill', teacher_run=teacher_run, temperature=2.0,
                          kl_weight=1.0)
  config.logging.run_dir = os.path.join(os.path.dirname(teacher_run), 'inproc')
  config.data.cache_dir = os.path.join(os.path.dirname(teacher_run), 'cache')
  config.train.update(global_batch_size=8, seed=3)
  run = build_run(config)
  built = run.built
  assert (jax.tree.map(lambda s: s.spec, built.teacher.param_shardings)
          == jax.tree.map(lambda s: s.spec, built.state_shardings.params))
  saved, _ = saved_params(teacher_run, 5)
  for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(run.teacher_params),
                               jax.tree.leaves(saved)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want),
                                  err_msg=jax.tree_util.keystr(path))
  assert any(len(x.sharding.device_set) > 1 for x in jax.tree.leaves(run.teacher_params))

  state = built.init_state()
  batch = run.global_batch(next(run.data.train_iter))
  step = jit_train_step(built.objective, 1, built.schedule, built.state_shardings,
                        built.batch_sharding, built.replicated, teacher=built.teacher)
  with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    student_logits = built.fns.apply({'params': state.params}, batch, deterministic=True)
    teacher_logits = built.fns.apply({'params': run.teacher_params}, batch,
                                     deterministic=True)
    _, metrics = step(state, batch, run.teacher_params)
  w = np.asarray(batch['weights'], np.float64)
  V = built.model_cfg.vocab_size
  kl = 4.0 * np.sum(_np_kl(np.asarray(teacher_logits['logits'])[..., :V],
                           np.asarray(student_logits['logits'])[..., :V], 2.0) * w)
  np.testing.assert_allclose(float(metrics['kl']), kl / w.sum(), rtol=1e-4)
  # A teacher of another vocabulary is refused by the builder, naming both sizes.
  config.model.vocab_size = 300
  with pytest.raises(Exception, match=r"teacher's vocabulary has 256 ids but the student's "
                                      r'has 300'):
    build(config, 256)
