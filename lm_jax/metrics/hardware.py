"""Peak dense matmul FLOP/s per device, for MFU; host allocator tuning for CPU runs.

GPU and TPU numbers are the vendors' published *dense* (no 2:4 sparsity) peaks,
per JAX device (one GPU; one TPU chip for v4 and later, where a JAX device is a
chip), taken from the spec sheets: NVIDIA A100 / H100 / H200 datasheets,
Google Cloud TPU system-architecture pages. They are not measured here.

'float32' is the peak at JAX's *default* matmul precision, which is what an
fp32 model gets unless jax_default_matmul_precision is raised: TF32 tensor
cores on A100/H100/H200, a single bf16 pass on TPU (so the bf16 number), plain
FP32 on V100 (no TF32). With precision 'highest' real fp32 throughput is far
lower (H100 SXM: 67 TFLOP/s), so MFU against this table is then pessimistic.

CPUs have no reliable table (cores, clocks, AVX width and the XLA CPU backend's
matmul library all vary): pass `override` (config logging.peak_flops_per_device),
or get CPU_DEFAULT_PEAK_FLOPS_PER_CORE, a *measured* estimate for the machine
class this project is developed on (see below), or call measure_matmul_peak().
"""

import ctypes
import ctypes.util
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

# device_kind (exactly as jax.Device.device_kind spells it) -> dtype -> FLOP/s.
PEAK_FLOPS = {
    # NVIDIA (datasheet dense peaks; 'float32' = TF32 tensor core, see module doc).
    'NVIDIA H100 80GB HBM3': {'bfloat16': 989.4e12, 'float32': 494.7e12},  # SXM5
    'NVIDIA H100 PCIe': {'bfloat16': 756.5e12, 'float32': 378.0e12},
    'NVIDIA H100 NVL': {'bfloat16': 835.5e12, 'float32': 417.5e12},
    'NVIDIA H200': {'bfloat16': 989.4e12, 'float32': 494.7e12},  # SXM, H100 SXM compute
    'NVIDIA H200 NVL': {'bfloat16': 835.5e12, 'float32': 417.5e12},
    'NVIDIA A100-SXM4-40GB': {'bfloat16': 312e12, 'float32': 156e12},
    'NVIDIA A100-SXM4-80GB': {'bfloat16': 312e12, 'float32': 156e12},
    'NVIDIA A100-PCIE-40GB': {'bfloat16': 312e12, 'float32': 156e12},
    'NVIDIA A100 80GB PCIe': {'bfloat16': 312e12, 'float32': 156e12},
    # V100 has no bf16 tensor cores (XLA computes bf16 matmuls in fp32 there).
    'Tesla V100-SXM2-16GB': {'bfloat16': 15.7e12, 'float32': 15.7e12},
    'Tesla V100-SXM2-32GB': {'bfloat16': 15.7e12, 'float32': 15.7e12},
    'Tesla V100-PCIE-16GB': {'bfloat16': 14.0e12, 'float32': 14.0e12},
    'Tesla V100-PCIE-32GB': {'bfloat16': 14.0e12, 'float32': 14.0e12},
    # TPU, per chip (Cloud TPU docs, bf16). Default-precision fp32 = one bf16 pass.
    'TPU v4': {'bfloat16': 275e12, 'float32': 275e12},
    'TPU v5 lite': {'bfloat16': 197e12, 'float32': 197e12},   # v5e
    'TPU v5': {'bfloat16': 459e12, 'float32': 459e12},        # v5p
    'TPU v5p': {'bfloat16': 459e12, 'float32': 459e12},
    'TPU v6 lite': {'bfloat16': 918e12, 'float32': 918e12},   # v6e (Trillium)
}

# Fallback for device_kind strings not listed exactly: (substring, table key),
# the more specific first ('H100 PCIe' before 'H100').
_FAMILIES = (
    ('h100 pcie', 'NVIDIA H100 PCIe'), ('h100 nvl', 'NVIDIA H100 NVL'),
    ('h100', 'NVIDIA H100 80GB HBM3'), ('h200 nvl', 'NVIDIA H200 NVL'),
    ('h200', 'NVIDIA H200'),
    ('a100', 'NVIDIA A100-SXM4-80GB'), ('v100-pcie', 'Tesla V100-PCIE-16GB'),
    ('v100', 'Tesla V100-SXM2-16GB'), ('tpu v5 lite', 'TPU v5 lite'),
    ('tpu v5e', 'TPU v5 lite'), ('tpu v6', 'TPU v6 lite'), ('tpu v5', 'TPU v5'),
    ('tpu v4', 'TPU v4'),
)

# CPU: MEASURED, not a spec. On this project's dev machine class (2-core AMD
# EPYC KVM guest, AVX-512, jax 0.10 XLA CPU) a 2048..3072-square fp32 jnp matmul
# sustains ~180-190 GFLOP/s on both cores, ~90 GFLOP/s per core (the nanoGPT
# reference run quotes ~160 GFLOP/s for the same machine). A guess for any
# other CPU: set logging.peak_flops_per_device, or use measure_matmul_peak().
# bf16 matmuls on this CPU are not faster than fp32, so the same number is used.
CPU_DEFAULT_PEAK_FLOPS_PER_CORE = 90e9


def _dtype_name(dtype) -> str:
  """'bfloat16' / 'float32' from a dtype or its name (float16 counts as bfloat16)."""
  name = jnp.dtype(dtype).name
  return 'bfloat16' if name in ('bfloat16', 'float16') else 'float32'


def lookup_peak_flops(device_kind: str, dtype='bfloat16') -> float | None:
  """Peak FLOP/s of one device of `device_kind` from PEAK_FLOPS, None if unknown."""
  entry = PEAK_FLOPS.get(device_kind)
  if entry is None:
    kind = device_kind.lower()
    entry = next((PEAK_FLOPS[key] for sub, key in _FAMILIES if sub in kind), None)
  return None if entry is None else entry[_dtype_name(dtype)]


def cpu_cores() -> int:
  """CPU cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def peak_flops_per_device(device: jax.Device | None = None, dtype='float32',
                          override: float = 0.0) -> float:
  """Peak FLOP/s of one device: `override` if > 0, else the table, else the CPU estimate.

  On CPU the XLA devices share one thread pool, so the machine's cores are
  divided among the local CPU devices. Raises KeyError for an unknown accelerator.
  """
  if override > 0:
    return float(override)
  device = jax.devices()[0] if device is None else device
  if device.platform == 'cpu':
    num_devices = max(len(jax.local_devices(backend='cpu')), 1)
    return CPU_DEFAULT_PEAK_FLOPS_PER_CORE * cpu_cores() / num_devices
  peak = lookup_peak_flops(device.device_kind, dtype)
  if peak is None:
    raise KeyError(
        f'no peak FLOP/s known for device_kind {device.device_kind!r}; set '
        '--config.logging.peak_flops_per_device (FLOP/s) or add it to '
        'lm_jax/metrics/hardware.py PEAK_FLOPS')
  return peak


def measure_matmul_peak(n: int = 2048, dtype=jnp.float32, repeats: int = 7,
                        device: jax.Device | None = None) -> float:
  """Median FLOP/s of an n x n @ n x n jitted matmul on `device` (a peak estimate)."""
  device = jax.devices()[0] if device is None else device
  a_NxN = jax.device_put(jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype),
                         device)
  b_NxN = a_NxN + 1
  matmul = jax.jit(jnp.matmul)
  matmul(a_NxN, b_NxN).block_until_ready()
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a_NxN, b_NxN).block_until_ready()
    seconds.append(time.perf_counter() - start)
  return 2.0 * n ** 3 / float(np.median(seconds))


# glibc mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def tune_cpu_allocator() -> bool:
  """Makes glibc malloc keep and reuse freed memory: a 1.1-1.2x faster CPU train step.

  XLA:CPU allocates each step's temporaries (~550 MB for nanoGPT's 6 x 384
  model at batch 8 x 256) on a worker thread; glibc serves that from a fresh
  mmap and unmaps it after the step, so every step page-faults the whole
  buffer in again (~145k faults, ~0.3 s of kernel time per ~1.1 s step on 2
  cores). One arena (M_ARENA_MAX=1), no mmap (M_MMAP_MAX=0) and no trimming
  keep the memory mapped between steps: the process's RSS stays at its peak.
  Only has an effect when called before JAX starts its CPU backend (before
  the first jax.devices() / computation) and on glibc; returns whether it
  was applied. The same as starting python with MALLOC_ARENA_MAX=1
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647.
  """
  if not sys.platform.startswith('linux'):
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False  # not glibc (e.g. musl)
  return bool(mallopt(_M_ARENA_MAX, 1) and mallopt(_M_MMAP_MAX, 0)
              and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
