"""The one device mesh of a run, built from the `mesh` config section."""

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from lm_jax.parallel.rules import MESH_AXES


def make_mesh(mesh_shape: dict[str, int], devices=None) -> Mesh:
  """A Mesh with axes MESH_AXES (Auto axis types, for linen's logical rules)."""
  devices = jax.devices() if devices is None else devices
  sizes = tuple(mesh_shape.get(a, 1) for a in MESH_AXES)
  if int(np.prod(sizes)) != len(devices):
    raise ValueError(f'mesh {dict(zip(MESH_AXES, sizes))} needs '
                     f'{int(np.prod(sizes))} devices, have {len(devices)}')
  return jax.make_mesh(sizes, MESH_AXES, axis_types=(AxisType.Auto,) * len(sizes),
                       devices=devices)


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
  """How every batch array ([B], [B, L], ...) is laid out: B over the batch axes of
  the rules, the other dims whole."""
  batch_axes = dict(rules)['batch']
  return NamedSharding(mesh, PartitionSpec(batch_axes))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())
