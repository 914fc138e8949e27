"""XLA's own per-device memory of a config's compiled train step (to check the estimate).

Compiles `train_step` exactly as training does (same model, optimizer, state
shardings, batch sharding, donation) on abstract inputs, so nothing is
allocated, and returns `compiled.memory_analysis()`'s sizes. On a sharded
program these are the sizes on one device.
"""

import flax.linen as nn
import jax

from lm_jax.build import build
from lm_jax.config.validate import resolve_mesh_shape
from lm_jax.train.step import jit_train_step


def compiled_train_step(config, vocab_size: int, devices=None):
  """The compiled (not run) train step of `config` on `devices` (default: all)."""
  built = build(config, vocab_size, devices)
  step = jit_train_step(built.objective, config.train.microbatches, built.schedule,
                        built.state_shardings, built.batch_sharding, built.replicated,
                        teacher=built.teacher)
  teacher = () if built.teacher is None else (built.teacher.abstract_params,)
  with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    return step.lower(built.abstract_state(), built.abstract_batch(), *teacher).compile()


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
