"""A run = what `build` makes from the config + its data (train, eval and the CLI share it)."""

import dataclasses
import logging
from typing import Any

import jax
import ml_collections
import numpy as np

from lm_jax.build import Built, build, build_mesh, task_of
from lm_jax.checkpoint import has_checkpoint
from lm_jax.config.loader import ConfigError
from lm_jax.config.validate import check_vocab_size, validate
from lm_jax.data.pipeline import Data, build_data
from lm_jax.parallel.batch_rows import global_array, local_rows
from lm_jax.parallel.mesh import batch_sharding


@dataclasses.dataclass
class Run:
  """The built pieces and the data of a run; the state is created or restored later."""
  built: Built
  data: Data
  local_rows: np.ndarray  # the global rows of each batch this process loads, sorted
  teacher_params: Any = None  # the teacher's params (built.teacher), sharded; never trained

  @property
  def teacher_args(self) -> tuple:
    """What the train and eval steps take after the batch: the teacher's params, if any."""
    return () if self.built.teacher is None else (self.teacher_params,)

  @property
  def config(self) -> ml_collections.ConfigDict:
    return self.built.config

  def global_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This process's rows (`local_rows`) -> one global jax.Array per key, sharded by batch."""
    size = self.config.train.global_batch_size
    return {k: global_array(v, self.local_rows, size, self.built.batch_sharding)
            for k, v in local_batch.items()}


def build_run(config: ml_collections.ConfigDict) -> Run:
  """Validates, builds the data (its tokenizer fixes the vocabulary), then the rest."""
  # Before any data is read or written: a bad config changes nothing on disk.
  validate(config, device_count=jax.device_count())
  mesh = build_mesh(config)
  # The rows this process's devices hold: a share, or all of them when the
  # batch dim is replicated across processes (tensor/sequence/stage spanning hosts).
  _, device_mesh, rules = mesh
  rows = local_rows(batch_sharding(device_mesh, rules), (config.train.global_batch_size,))
  if config.objective.teacher_run:
    from lm_jax.teacher import check_teacher_run  # pylint: disable=g-import-not-at-top
    check_teacher_run(config)
  try:
    data = build_data(config.data,
                      global_batch_size=config.train.global_batch_size,
                      run_dir=config.logging.run_dir,
                      task=task_of(config),
                      process_index=jax.process_index(),
                      rows=rows.tolist(),
                      resuming=has_checkpoint(config.logging.run_dir),
                      allow_new_data=config.checkpoint.allow_new_data)
  except ValueError as e:  # bad source path, too little data: the user's to fix
    raise ConfigError(f'config.data: {e}') from e
  check_vocab_size(config.model, data.tokenizer.kind, data.vocab_size)
  built = build(config, data.vocab_size, mesh=mesh)
  logging.info('mesh %s, rules %s, family %s, task %s', built.mesh_shape,
               config.mesh.rules, built.family.name, built.task.name)
  teacher_params = None
  if built.teacher is not None:
    from lm_jax.teacher import restore_teacher  # pylint: disable=g-import-not-at-top
    teacher_params = restore_teacher(built.teacher, data.tokenizer.identity(), config)
  return Run(built=built, data=data, local_rows=rows, teacher_params=teacher_params)
