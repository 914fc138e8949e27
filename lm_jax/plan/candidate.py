"""One candidate allocation: mesh sizes, remat preset, microbatches; and its overrides."""

import dataclasses

import ml_collections

from lm_jax.config.loader import apply_overrides
from lm_jax.parallel.rules import MESH_AXES, rules_for_mesh


@dataclasses.dataclass(frozen=True)
class Plan:
  """What the planner chooses; everything else comes from the config."""
  data: int = 1
  stage: int = 1
  fsdp: int = 1
  sequence: int = 1
  tensor: int = 1
  remat: str = 'none'
  microbatches: int = 1           # gradient accumulation (train.microbatches)
  pipeline_microbatches: int = 1  # GPipe microbatches (mesh.pipeline_microbatches)
  rules_name: str = 'auto'        # mesh.rules

  @property
  def mesh_shape(self) -> dict[str, int]:
    return {axis: getattr(self, axis) for axis in MESH_AXES}

  @property
  def num_devices(self) -> int:
    return self.data * self.stage * self.fsdp * self.sequence * self.tensor

  def rules(self) -> dict:
    """Logical axis name -> mesh axes, as training will use them."""
    return dict(rules_for_mesh(self.mesh_shape, self.rules_name))

  def overrides(self, config: ml_collections.ConfigDict | None = None) -> list[str]:
    """The --config flags that launch this plan (layers scanned: see docs/planner.md)."""
    flags = [f'--config.mesh.{axis}={getattr(self, axis)}' for axis in MESH_AXES]
    if config is None or config.mesh.rules != self.rules_name:
      flags.append(f'--config.mesh.rules={self.rules_name}')
    flags += [f'--config.model.remat={self.remat}', '--config.model.scan_layers=true',
              f'--config.train.microbatches={self.microbatches}']
    if self.stage > 1:
      flags.append(f'--config.mesh.pipeline_microbatches={self.pipeline_microbatches}')
    return flags

  def label(self) -> str:
    """Short mesh text, e.g. 'd2 f4 t8' (axes of size 1 left out)."""
    text = ' '.join(f'{axis[0]}{size}' for axis, size in self.mesh_shape.items()
                    if size > 1)
    return text or 'single'


def apply_plan(config: ml_collections.ConfigDict, plan: Plan) -> ml_collections.ConfigDict:
  """A copy of `config` with the plan's overrides applied."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.lock()
  apply_overrides(config, plan.overrides(config))
  return config


def plan_of_config(config: ml_collections.ConfigDict, mesh_shape: dict[str, int]) -> Plan:
  """The plan a config already describes (its mesh resolved to `mesh_shape`)."""
  return Plan(**mesh_shape, remat=config.model.remat,
              microbatches=config.train.microbatches,
              pipeline_microbatches=config.mesh.pipeline_microbatches,
              rules_name=config.mesh.rules)
