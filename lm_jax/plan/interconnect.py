"""Devices the planner knows: memory, peak FLOP/s, and the bandwidth of each mesh axis.

Bandwidths are vendors' published numbers, per device and one direction, not
measured here (no multi-node hardware): NVLink within a node of GPUs (or ICI
within a TPU slice) and the network across nodes (InfiniBand NIC per GPU, or
DCN per TPU chip). Mesh axes are laid out innermost first, `tensor` varying
fastest (lm_jax/parallel/rules.py MESH_AXES is outer to inner), so an axis
whose devices are `stride` apart and `size` long stays inside a node exactly
when stride * size <= devices_per_node.
"""

import dataclasses
import math

from lm_jax.metrics import hardware
from lm_jax.parallel.rules import MESH_AXES

GB = 1e9


@dataclasses.dataclass(frozen=True)
class DeviceSpec:
  """One accelerator kind and how its devices are connected."""
  name: str                 # what --device takes
  peak_kind: str            # key of lm_jax.metrics.hardware.PEAK_FLOPS
  platform: str             # gpu | tpu | cpu
  memory_bytes: float
  usable_fraction: float    # of memory_bytes a JAX process can use
  devices_per_node: int     # GPUs on one NVLink domain / chips in one TPU slice
  intra_bytes_per_s: float  # per device, one direction, inside a node / slice
  inter_bytes_per_s: float  # per device, one direction, across nodes / slices
  intra_latency_s: float = 10e-6   # per collective
  inter_latency_s: float = 30e-6
  peak_flops_override: float = 0.0  # FLOP/s for every dtype (--device-flops)

  def peak_flops(self, dtype: str) -> float:
    """Dense matmul FLOP/s of one device at `dtype` (float32: default precision)."""
    if self.peak_flops_override:
      return self.peak_flops_override
    return hardware.lookup_peak_flops(self.peak_kind, dtype)

  @property
  def usable_bytes(self) -> float:
    return self.memory_bytes * self.usable_fraction


# GPU: JAX preallocates and uses 75% of the memory (XLA_PYTHON_CLIENT_MEM_FRACTION).
# NVLink 4 (H100/H200 SXM): 900 GB/s both directions -> 450; NVLink 3 (A100): 600 -> 300.
# InfiniBand: one 400 Gb/s NDR NIC per GPU (DGX H100) = 50 GB/s; HDR 200 Gb/s = 25 GB/s.
# TPU: ICI per chip from the Cloud TPU system-architecture pages (one direction =
# half the bidirectional figure), the whole pod as one slice; DCN across slices
# from the per-host NICs divided by the chips of a host (e.g. v5e: 2 x 100 Gb/s for
# 8 chips = 3.1 GB/s). TPU runtimes use ~all of HBM: 0.95.
DEVICES = {
    'h100': DeviceSpec('h100', 'NVIDIA H100 80GB HBM3', 'gpu', 80 * 2 ** 30, 0.75, 8,
                       450 * GB, 50 * GB),
    'h200': DeviceSpec('h200', 'NVIDIA H200', 'gpu', 141 * GB, 0.75, 8, 450 * GB, 50 * GB),
    'a100': DeviceSpec('a100', 'NVIDIA A100-SXM4-80GB', 'gpu', 80 * 2 ** 30, 0.75, 8,
                       300 * GB, 25 * GB),
    'a100-40gb': DeviceSpec('a100-40gb', 'NVIDIA A100-SXM4-40GB', 'gpu', 40 * 2 ** 30, 0.75,
                            8, 300 * GB, 25 * GB),
    'tpu-v4': DeviceSpec('tpu-v4', 'TPU v4', 'tpu', 32 * 2 ** 30, 0.95, 4096, 150 * GB,
                         6.25 * GB),
    'tpu-v5e': DeviceSpec('tpu-v5e', 'TPU v5 lite', 'tpu', 16 * GB, 0.95, 256, 200 * GB,
                          3.125 * GB),
    'tpu-v5p': DeviceSpec('tpu-v5p', 'TPU v5p', 'tpu', 95 * GB, 0.95, 8960, 600 * GB,
                          6.25 * GB),
    'tpu-v6e': DeviceSpec('tpu-v6e', 'TPU v6 lite', 'tpu', 32 * GB, 0.95, 256, 448 * GB,
                          3.125 * GB),
}


def custom_device(base: DeviceSpec, *, memory_bytes: float = 0.0, peak_flops: float = 0.0,
                  devices_per_node: int = 0, intra_bytes_per_s: float = 0.0,
                  inter_bytes_per_s: float = 0.0) -> DeviceSpec:
  """`base` with the given (non-zero) fields replaced."""
  changes = {k: v for k, v in dict(
      memory_bytes=memory_bytes, peak_flops_override=peak_flops,
      devices_per_node=devices_per_node, intra_bytes_per_s=intra_bytes_per_s,
      inter_bytes_per_s=inter_bytes_per_s).items() if v}
  return dataclasses.replace(base, **changes)


def axis_stride(mesh_shape: dict[str, int], axis: str) -> int:
  """Distance in device ids between neighbours along `axis` (inner axes' product)."""
  inner = MESH_AXES[MESH_AXES.index(axis) + 1:]
  return math.prod(mesh_shape[a] for a in inner)


def crosses_nodes(mesh_shape: dict[str, int], axes, devices_per_node: int) -> bool:
  """Whether a group spanning `axes` (one name or several) leaves one node."""
  axes = (axes,) if isinstance(axes, str) else tuple(axes)
  busy = [a for a in axes if mesh_shape[a] > 1]
  if not busy:
    return False
  span = max(axis_stride(mesh_shape, a) * mesh_shape[a] for a in busy)
  return span > devices_per_node


def axis_bandwidth(spec: DeviceSpec, mesh_shape: dict[str, int], axes) -> tuple[float, float]:
  """(bytes/s, latency s) of collectives over `axes`: the network if any leaves a node."""
  if crosses_nodes(mesh_shape, axes, spec.devices_per_node):
    return spec.inter_bytes_per_s, spec.inter_latency_s
  return spec.intra_bytes_per_s, spec.intra_latency_s
