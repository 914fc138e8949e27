"""Pipeline parallelism over the `stage` mesh axis: loss and gradients equal
the plain single-device model's (its params reshaped [stages, layers/stage]
<-> [layers]); stage params are split over `stage`; the bubble formula
matches the schedule the pipeline runs."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.config.loader import ConfigError, load_config
from lm_jax.config.validate import validate
from lm_jax.models import build_model
from lm_jax.models.pipeline import bubble_fraction, gpipe_schedule
from lm_jax.parallel.mesh import make_mesh, replicated
from lm_jax.parallel.rules import rules_for_mesh
from lm_jax.models.registry import get_family, model_fns
from lm_jax.run import build_run
from lm_jax.train.state import TrainState
from lm_jax.train.step import mean_grads
from tests.run_helpers import QUICK
from tests.sharded_setup import (SEQ, VOCAB, objective, place_batch, random_batch,
                                 tiny_model_cfg)

BATCH = 16
FAST_COMPILE = {'xla_backend_optimization_level': 0,
                'xla_llvm_disable_expensive_passes': True}
# (stages, pipeline microbatches, mesh): M > S with FSDP, and M < S.
PIPELINES = {
    'stage2_data2_fsdp2': (2, 4, dict(data=2, stage=2, fsdp=2)),
    'stage4_data2': (4, 2, dict(data=2, stage=4)),
}


def _model(stages=1, micro=1):
  m = tiny_model_cfg('gpt')
  m.update(num_layers=4, scan_layers=True)
  mesh_cfg = ml_collections.ConfigDict(dict(stage=stages,
                                            pipeline_microbatches=micro))
  return build_model(m, VOCAB, mesh_cfg)[0]


def _boxed_params(model, batch=BATCH):
  return jax.eval_shape(model.init, jax.random.PRNGKey(0),
                        np.zeros((batch, SEQ), np.int32))['params']


@functools.cache
def _plain_params():
  """O(1) random params of the plain scanned model (init_std=0.02 would make
  every block nearly the identity and hide a skipped or misordered stage)."""
  rng = np.random.default_rng(0)

  def fill(path, s):
    noise = 0.2 * rng.standard_normal(s.shape)
    is_scale = 'scale' in jax.tree_util.keystr(path)
    return (1.0 + noise if is_scale else noise).astype(np.float32)

  shapes = nn.meta.unbox(_boxed_params(_model()))
  return jax.tree_util.tree_map_with_path(fill, shapes)


def _to_pipeline(params, stages):
  """Plain layout {'layers': [layers, ...]} -> {'pipeline': [S, layers/S, ...]}."""
  out = {k: v for k, v in params.items() if k != 'layers'}
  out['pipeline'] = {'stages': {'layers': jax.tree.map(
      lambda a: a.reshape((stages, -1) + a.shape[1:]), params['layers'])}}
  return out


def _from_pipeline(params):
  out = {k: v for k, v in params.items() if k != 'pipeline'}
  out['layers'] = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]),
                               params['pipeline']['stages']['layers'])
  return out


@functools.cache
def _loss_and_grads(name):
  """(loss, plain-layout grads, placed params, compiled HLO) of mean_grads."""
  stages, micro, mesh_shape = PIPELINES.get(name, (1, 1, {}))
  devices = jax.devices()[:int(np.prod(list(mesh_shape.values())))]
  mesh, rules = make_mesh(mesh_shape, devices), rules_for_mesh(mesh_shape)
  model = _model(stages, micro)
  params = _plain_params()
  if stages > 1:
    params = _to_pipeline(params, stages)
  shardings = nn.logical_to_mesh_sharding(
      nn.get_partition_spec(_boxed_params(model)), mesh, rules)
  state = TrainState(step=jnp.zeros((), jnp.int32),
                     params=jax.device_put(params, shardings), opt_state=None,
                     rng=jax.random.PRNGKey(0),
                     apply_fn=model_fns(get_family('decoder'), model).apply, tx=None)
  fn = jax.jit(functools.partial(mean_grads, objective=objective(), num_micro=1),
               out_shardings=(shardings, replicated(mesh), replicated(mesh)))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    batch = place_batch(random_batch(batch=BATCH), mesh, rules)
    compiled = fn.lower(state, batch).compile(FAST_COMPILE)
    grads, metrics, _ = compiled(state, batch)
  grads = jax.tree.map(np.asarray, grads)
  if stages > 1:
    grads = _from_pipeline(grads)
  loss = float(metrics['loss'])
  return loss, grads, state.params, compiled.as_text()


@pytest.mark.parametrize('name', PIPELINES)
def test_loss_and_grads_match_single_device(name):
  ref_loss, ref_grads, *_ = _loss_and_grads('single_device')
  loss, grads, _, hlo = _loss_and_grads(name)
  assert abs(loss - ref_loss) < 2e-5 * abs(ref_loss), (loss, ref_loss)
  for (path, g_ref), g in zip(jax.tree_util.tree_leaves_with_path(ref_grads),
                              jax.tree.leaves(grads)):
    np.testing.assert_allclose(g, g_ref, rtol=2e-4, atol=1e-6,
                               err_msg=jax.tree_util.keystr(path))
  # The buffer moves between stage groups point to point.
  assert 'collective-permute' in hlo


def test_stage_params_are_split_over_stage_axis():
  stages = 4
  *_, params, _ = _loss_and_grads('stage4_data2')
  leaves = jax.tree.leaves(params['pipeline'])
  for a in leaves:
    assert a.shape[0] == stages and a.sharding.spec[0] == 'stage', a.sharding
    assert a.addressable_shards[0].data.nbytes * stages == a.nbytes
  # The embedding, outside the pipeline, stays whole on every device.
  assert params['embed']['embedding'].sharding.is_fully_replicated


@pytest.mark.parametrize('stages, micro', [(1, 4), (2, 1), (2, 4), (4, 2),
                                           (4, 8), (8, 32)])
def test_bubble_fraction_is_the_idle_share_of_the_schedule(stages, micro):
  schedule_TxS = gpipe_schedule(stages, micro)
  assert schedule_TxS.shape == (micro + stages - 1, stages)
  assert bubble_fraction(stages, micro) == pytest.approx(
      (stages - 1) / (micro + stages - 1))
  assert np.mean(schedule_TxS == -1) == pytest.approx(
      bubble_fraction(stages, micro))
  for s in range(stages):  # each stage takes every microbatch once, in order
    busy = schedule_TxS[:, s][schedule_TxS[:, s] >= 0]
    np.testing.assert_array_equal(busy, np.arange(micro))
  # Microbatch m is at stage s at iteration m + s (it moves one stage a step).
  t, s = np.nonzero(schedule_TxS >= 0)
  np.testing.assert_array_equal(schedule_TxS[t, s], t - s)


def test_executed_schedule_and_logits_match_plain_model():
  """The microbatch ids that travelled through the buffer (sown by the
  pipeline) are gpipe_schedule's, so their idle share is the bubble."""
  stages, micro, batch = 2, 3, 6
  tokens = random_batch(batch=batch)['inputs']
  plain = jax.jit(_model().apply, compiler_options=FAST_COMPILE)
  piped = jax.jit(functools.partial(_model(stages, micro).apply,
                                    mutable=['intermediates']),
                  compiler_options=FAST_COMPILE)
  params = _plain_params()
  logits, inter = piped({'params': _to_pipeline(params, stages)}, tokens)
  executed_TxS = np.asarray(inter['intermediates']['pipeline']['schedule'][0])
  np.testing.assert_array_equal(executed_TxS, gpipe_schedule(stages, micro))
  assert np.mean(executed_TxS == -1) == pytest.approx(
      bubble_fraction(stages, micro))
  np.testing.assert_allclose(logits, plain({'params': params}, tokens),
                             rtol=2e-5, atol=2e-5)


def _config(**mesh):
  c = base_config()
  c.model.num_layers = 4
  c.train.global_batch_size = 16
  c.mesh.update({'data': -1, **mesh})
  return c


def test_validate_accepts_pipeline_and_refuses_bad_shapes():
  validate(_config(stage=2, fsdp=2, pipeline_microbatches=4), device_count=8)
  validate(_config(stage=4, pipeline_microbatches=8), device_count=8)
  bad = [(dict(stage=8, pipeline_microbatches=1), 'model.num_layers=4'),
         (dict(stage=2, pipeline_microbatches=3), 'mesh.pipeline_microbatches=3'),
         # 16 / 8 = 2 sequences per pipeline microbatch, over data*fsdp = 4.
         (dict(stage=2, fsdp=2, pipeline_microbatches=8),
          'mesh.pipeline_microbatches=8'),
         (dict(stage=-1, data=2, pipeline_microbatches=2), 'mesh.stage=-1')]
  for mesh, key in bad:
    with pytest.raises(ConfigError, match=key):
      validate(_config(**mesh), device_count=8)


def test_build_run_gives_the_model_the_mesh_stages(tmp_path):
  """The train setup passes mesh.stage and pipeline_microbatches to the model."""
  c = load_config(QUICK)
  c.logging.run_dir = str(tmp_path / 'run')
  c.data.cache_dir = str(tmp_path / 'cache')
  c.train.global_batch_size = 16
  c.mesh.update({'data': -1, 'stage': 2, 'fsdp': 2, 'pipeline_microbatches': 2})
  run = build_run(c)
  assert (run.built.model_cfg.num_stages, run.built.model_cfg.pipeline_microbatches) == (2, 2)
  up = run.built.state_shardings.params['pipeline']['stages']['layers']['mlp']['up']
  assert tuple(up['kernel'].spec) == ('stage', None, 'fsdp', None)
