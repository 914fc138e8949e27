"""Everything a run needs, built once from a validated config (train and eval share it)."""

import dataclasses
import logging
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from lm_jax.checkpoint import has_checkpoint
from lm_jax.config.loader import ConfigError
from lm_jax.config.validate import check_vocab_size, resolve_mesh_shape, validate
from lm_jax.data.pipeline import Data, build_data
from lm_jax.models import build_model
from lm_jax.models.config import ModelConfig
from lm_jax.parallel.batch_rows import global_array, local_rows
from lm_jax.parallel.mesh import batch_sharding, make_mesh, replicated
from lm_jax.parallel.rules import rules_for_mesh
from lm_jax.train.optimizer import make_optimizer
from lm_jax.train.state import TrainState, abstract_train_state, state_shardings


@dataclasses.dataclass
class Run:
  """The resolved pieces of a run; the state itself is created or restored later."""
  config: ml_collections.ConfigDict
  mesh: Mesh
  rules: Any
  data: Data
  model: nn.Module
  model_cfg: ModelConfig
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  state_shardings: Any
  batch_sharding: NamedSharding
  example_inputs_BxL: np.ndarray
  local_rows: np.ndarray  # the global rows of each batch this process loads, sorted

  @property
  def replicated(self) -> NamedSharding:
    return replicated(self.mesh)

  def abstract_state(self) -> TrainState:
    return abstract_train_state(self.model, self.tx, self.example_inputs_BxL,
                                self.state_shardings)

  def global_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows (`local_rows`) -> one global jax.Array per key, sharded by batch."""
    size = len(self.example_inputs_BxL)
    return {k: global_array(v, self.local_rows, size, self.batch_sharding)
            for k, v in local_batch.items()}


def build_run(config: ml_collections.ConfigDict) -> Run:
  """Validates the config, then builds mesh, data, model and optimizer."""
  device_count = jax.device_count()
  validate(config, device_count=device_count)
  mesh_shape = resolve_mesh_shape(config.mesh, device_count)
  mesh = make_mesh(mesh_shape)
  rules = rules_for_mesh(mesh_shape, config.mesh.rules)
  example = np.zeros((config.train.global_batch_size, config.data.seq_len), np.int32)
  sharding = batch_sharding(mesh, rules)
  # The rows this process's devices hold: a share, or all of them when the
  # batch dim is replicated across processes (tensor/sequence/stage spanning hosts).
  rows = local_rows(sharding, example.shape)
  try:
    data = build_data(config.data,
                      global_batch_size=config.train.global_batch_size,
                      run_dir=config.logging.run_dir,
                      process_index=jax.process_index(),
                      rows=rows.tolist(),
                      resuming=has_checkpoint(config.logging.run_dir),
                      allow_new_data=config.checkpoint.allow_new_data)
  except ValueError as e:  # bad source path, too little data: the user's to fix
    raise ConfigError(f'config.data: {e}') from e
  check_vocab_size(config.model, data.tokenizer.kind, data.tokenizer.vocab_size)
  model, model_cfg = build_model(config.model, data.tokenizer.vocab_size,
                                 config.mesh)
  tx, schedule = make_optimizer(config.optimizer, config.train.steps)
  shardings = state_shardings(model, tx, example, mesh, rules)
  logging.info('mesh %s, rules %s', mesh_shape, config.mesh.rules)
  return Run(config=config, mesh=mesh, rules=rules, data=data, model=model,
             model_cfg=model_cfg, tx=tx, schedule=schedule,
             state_shardings=shardings, batch_sharding=sharding,
             example_inputs_BxL=example, local_rows=rows)
