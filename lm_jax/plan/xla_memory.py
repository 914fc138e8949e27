"""XLA's own per-device memory of a config's compiled train step (to check the estimate).

Compiles `train_step` exactly as training does (same model, optimizer, state
shardings, batch sharding, donation) on abstract inputs, so nothing is
allocated, and returns `compiled.memory_analysis()`'s sizes. On a sharded
program these are the sizes on one device.
"""

import functools

import flax.linen as nn
import jax
import numpy as np

from lm_jax.config.validate import resolve_mesh_shape, validate
from lm_jax.models import build_model
from lm_jax.parallel.mesh import batch_sharding, make_mesh, replicated
from lm_jax.parallel.rules import rules_for_mesh
from lm_jax.train.losses import cross_entropy_sums
from lm_jax.train.optimizer import make_optimizer
from lm_jax.train.state import abstract_train_state, state_shardings
from lm_jax.train.step import jit_train_step


def compiled_train_step(config, vocab_size: int, devices=None):
  """The compiled (not run) train step of `config` on `devices` (default: all)."""
  devices = jax.devices() if devices is None else devices
  validate(config, device_count=len(devices))
  mesh_shape = resolve_mesh_shape(config.mesh, len(devices))
  mesh = make_mesh(mesh_shape, devices)
  rules = rules_for_mesh(mesh_shape, config.mesh.rules)
  model, _ = build_model(config.model, vocab_size, config.mesh)
  tx, schedule = make_optimizer(config.optimizer, config.train.steps)
  B, L = config.train.global_batch_size, config.data.seq_len
  example_BxL = np.zeros((B, L), np.int32)
  shardings = state_shardings(model, tx, example_BxL, mesh, rules)
  state = abstract_train_state(model, tx, example_BxL, shardings)
  batch_spec = batch_sharding(mesh, rules)
  batch = {name: jax.ShapeDtypeStruct((B, L), dtype, sharding=batch_spec)
           for name, dtype in (('inputs', np.int32), ('targets', np.int32),
                               ('weights', np.float32))}
  loss_fn = functools.partial(cross_entropy_sums, z_loss=config.train.z_loss)
  step = jit_train_step(loss_fn, config.train.microbatches, schedule, shardings,
                        batch_spec, replicated(mesh))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    return step.lower(state, batch).compile()


def xla_memory_bytes(config, vocab_size: int, devices=None) -> dict[str, int]:
  """Per-device bytes: argument, output, alias, temp and total (= arg + out - alias + temp)."""
  analysis = compiled_train_step(config, vocab_size, devices).memory_analysis()
  sizes = {name: int(getattr(analysis, f'{name}_size_in_bytes'))
           for name in ('argument', 'output', 'alias', 'temp')}
  sizes['total'] = (sizes['argument'] + sizes['output'] - sizes['alias']
                    + sizes['temp'])
  return sizes


def estimate_vs_xla(config, vocab_size: int, devices=None) -> dict[str, dict[str, float]]:
  """{'estimate': ..., 'xla': ...}: argument, temp and total bytes per device of both.

  The estimate is for the config's own mesh, remat and microbatches on the CPU
  (blockwise attention under attention='auto'); compare with layers scanned.
  """
  from lm_jax.plan.candidate import plan_of_config
  from lm_jax.plan.memory import estimate_memory
  from lm_jax.plan.shapes import model_facts
  devices = jax.devices() if devices is None else devices
  xla = xla_memory_bytes(config, vocab_size, devices)
  plan = plan_of_config(config, resolve_mesh_shape(config.mesh, len(devices)))
  est = estimate_memory(model_facts(config, vocab_size, plan.stage), plan, 'cpu')
  return {'estimate': {'argument': est.argument_bytes, 'temp': est.temp_bytes,
                       'total': est.total_bytes, **est.components()},
          'xla': xla}
