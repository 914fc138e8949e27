"""The one builder: mesh, rules, family module, objective, optimizer, shardings and
abstract state from a config, with no data.

Train, eval, the planner's XLA check, the benchmark and the tests all call
`build`; nothing else wires these pieces together.
"""

import dataclasses
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from lm_jax.config.validate import resolve_mesh_shape, validate
from lm_jax.data.tasks import Task, get_task
from lm_jax.models.registry import Family, ModelFns, get_family, model_fns
from lm_jax.objectives import Objective, make_objective
from lm_jax.objectives.teacher import Teacher
from lm_jax.parallel.mesh import batch_sharding, make_mesh, replicated
from lm_jax.parallel.rules import rules_for_mesh
from lm_jax.train.optimizer import make_optimizer
from lm_jax.train.state import (TrainState, abstract_train_state, create_train_state,
                                state_shardings)


@dataclasses.dataclass
class Built:
  """Everything about a run that does not need its data."""
  config: ml_collections.ConfigDict
  mesh: Mesh
  mesh_shape: dict[str, int]
  rules: Any
  family: Family
  task: Task
  module: Any                # the linen module
  model_cfg: Any             # the family's resolved model dataclass
  fns: ModelFns              # init / apply on whole batches
  objective: Objective
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  state_shardings: Any
  batch_sharding: NamedSharding
  batch_spec: dict           # key -> (shape, dtype) of one global batch
  teacher: Teacher | None = None  # objective.teacher_run's model (params restored by build_run)

  @property
  def replicated(self) -> NamedSharding:
    return replicated(self.mesh)

  def example_batch(self) -> dict[str, np.ndarray]:
    """Zeros shaped like one global batch (for init and eval_shape)."""
    return {k: np.zeros(shape, dtype) for k, (shape, dtype) in self.batch_spec.items()}

  def abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
    """One global batch as ShapeDtypeStructs with their sharding (for lowering)."""
    return {k: jax.ShapeDtypeStruct(shape, dtype, sharding=self.batch_sharding)
            for k, (shape, dtype) in self.batch_spec.items()}

  def abstract_state(self) -> TrainState:
    """The state's ShapeDtypeStructs with their target shardings (what a restore fills)."""
    return abstract_train_state(self.fns, self.tx, self.example_batch(), self.state_shardings)

  def init_state(self, seed: int | None = None) -> TrainState:
    """A fresh state, created directly in its sharded layout."""
    seed = self.config.train.seed if seed is None else seed
    state, _ = create_train_state(self.fns, self.tx, jax.random.PRNGKey(seed),
                                  self.example_batch(), self.mesh, self.rules,
                                  self.state_shardings)
    return state


def task_of(config: ml_collections.ConfigDict) -> Task:
  """The run's batch maker: config.data.task, or the family's default."""
  return get_task(config.data.task or get_family(config.model.family).tasks[0])


def build_mesh(config: ml_collections.ConfigDict, devices=None):
  """(mesh shape, Mesh, rule table) of a validated config on `devices` (default: all)."""
  devices = jax.devices() if devices is None else list(devices)
  mesh_shape = resolve_mesh_shape(config.mesh, len(devices))
  return mesh_shape, make_mesh(mesh_shape, devices), rules_for_mesh(mesh_shape, config.mesh.rules)


def build(config: ml_collections.ConfigDict, vocab_size: int, devices=None,
          mesh=None) -> Built:
  """Validates `config` for `devices` (default: all) and builds everything but the data.

  `vocab_size` is the tokenizer's (config.model.vocab_size, when set, wins);
  `mesh`: what build_mesh returned, when the caller needed it first.
  """
  devices = jax.devices() if devices is None else list(devices)
  validate(config, device_count=len(devices))
  mesh_shape, mesh, rules = mesh or build_mesh(config, devices)
  family = get_family(config.model.family)
  task = task_of(config)
  module, model_cfg = family.build(config.model, vocab_size, config.mesh)
  fns = model_fns(family, module)
  objective = make_objective(config, model_cfg)
  teacher = None
  if config.objective.teacher_run:
    from lm_jax.teacher import build_teacher  # pylint: disable=g-import-not-at-top
    teacher = build_teacher(config, model_cfg, task, (mesh_shape, mesh, rules))
  tx, schedule = make_optimizer(config.optimizer, config.train.steps)
  spec = task.batch_spec(config.train.global_batch_size, config.data.seq_len, config.data)
  example = {k: np.zeros(shape, dtype) for k, (shape, dtype) in spec.items()}
  shardings = state_shardings(fns, tx, example, mesh, rules)
  return Built(config=config, mesh=mesh, mesh_shape=mesh_shape, rules=rules, family=family,
               task=task, module=module, model_cfg=model_cfg, fns=fns, objective=objective,
               tx=tx, schedule=schedule, state_shardings=shardings,
               batch_sharding=batch_sharding(mesh, rules), batch_spec=spec, teacher=teacher)
