"""Peak dense matmul FLOP/s per device, for MFU; host allocator tuning for CPU runs.

GPU and TPU numbers are the vendors' published *dense* (no 2:4 sparsity) peaks,
per JAX device (one GPU; one TensorCore for TPU v2 / v3, whose chips hold two;
one chip for v4 and later, where a JAX device is a chip), taken from the spec
sheets named next to each entry (where a sheet gives only the sparse figure,
the entry is half of it). They are not measured here. An accelerator missing
from the table has no MFU (the loop warns once and leaves the metric out).

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
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

# device_kind (exactly as jax.Device.device_kind spells it) -> dtype -> FLOP/s.
PEAK_FLOPS = {
    # NVIDIA (dense peaks; 'float32' = TF32 tensor core, see module doc).
    # Hopper: H100 / H200 datasheets (H100 NVL and H200 NVL: the NVL columns).
    'NVIDIA H100 80GB HBM3': {'bfloat16': 989.4e12, 'float32': 494.7e12},  # SXM5
    'NVIDIA H100 PCIe': {'bfloat16': 756.5e12, 'float32': 378.0e12},
    'NVIDIA H100 NVL': {'bfloat16': 835.5e12, 'float32': 417.5e12},
    'NVIDIA H200': {'bfloat16': 989.4e12, 'float32': 494.7e12},  # SXM, H100 SXM compute
    'NVIDIA H200 NVL': {'bfloat16': 835.5e12, 'float32': 417.5e12},
    # Blackwell, per GPU: HGX B200 / HGX B100 datasheets (8 GPUs: 36 / 28 PFLOPS
    # BF16 and 18 / 14 PFLOPS TF32, sparse), GB200 NVL72 datasheet (72 GPUs:
    # 360 PFLOPS BF16, 180 PFLOPS TF32, sparse); halved for dense.
    'NVIDIA B200': {'bfloat16': 2.25e15, 'float32': 1.125e15},
    'NVIDIA B100': {'bfloat16': 1.75e15, 'float32': 0.875e15},
    'NVIDIA GB200': {'bfloat16': 2.5e15, 'float32': 1.25e15},
    # Ampere data center: A100 datasheet (40GB and 80GB, SXM and PCIe alike),
    # A10 datasheet (BF16 125, TF32 62.5 dense).
    'NVIDIA A100-SXM4-40GB': {'bfloat16': 312e12, 'float32': 156e12},
    'NVIDIA A100-SXM4-80GB': {'bfloat16': 312e12, 'float32': 156e12},
    'NVIDIA A100-PCIE-40GB': {'bfloat16': 312e12, 'float32': 156e12},
    'NVIDIA A100 80GB PCIe': {'bfloat16': 312e12, 'float32': 156e12},
    'NVIDIA A10': {'bfloat16': 125e12, 'float32': 62.5e12},
    # A10G (AWS G5) has no public NVIDIA datasheet; AWS's published figures
    # for it: BF16 70, TF32 35 TFLOP/s dense (fewer tensor FLOPs than the A10).
    'NVIDIA A10G': {'bfloat16': 70e12, 'float32': 35e12},
    # Ada data center: L4 datasheet (BF16 242, TF32 120, sparse), L40S datasheet
    # (BF16 362.05, TF32 183 dense), L40 datasheet (BF16 181.05, TF32 90.5 dense).
    'NVIDIA L4': {'bfloat16': 121e12, 'float32': 60e12},
    'NVIDIA L40S': {'bfloat16': 362.05e12, 'float32': 183e12},
    'NVIDIA L40': {'bfloat16': 181.05e12, 'float32': 90.5e12},
    # Workstation / consumer, BF16 with FP32 accumulate (what XLA asks for):
    # NVIDIA Ampere GA102 whitepaper (RTX A6000: 154.8 / TF32 77.4; RTX 3090:
    # 71 / 35.6) and Ada AD102 whitepaper (RTX 6000 Ada: 364.2 / 182.1;
    # RTX 4090: 165.2 / 82.6), dense.
    'NVIDIA RTX A6000': {'bfloat16': 154.8e12, 'float32': 77.4e12},
    'NVIDIA RTX 6000 Ada Generation': {'bfloat16': 364.2e12, 'float32': 182.1e12},
    'NVIDIA GeForce RTX 4090': {'bfloat16': 165.2e12, 'float32': 82.6e12},
    'NVIDIA GeForce RTX 3090': {'bfloat16': 71e12, 'float32': 35.6e12},
    # V100 (V100 datasheet) and T4 (T4 datasheet: FP32 8.1 TFLOP/s) have no
    # bf16 tensor cores and no TF32: XLA computes bf16 matmuls in fp32 there.
    'Tesla V100-SXM2-16GB': {'bfloat16': 15.7e12, 'float32': 15.7e12},
    'Tesla V100-SXM2-32GB': {'bfloat16': 15.7e12, 'float32': 15.7e12},
    'Tesla V100-PCIE-16GB': {'bfloat16': 14.0e12, 'float32': 14.0e12},
    'Tesla V100-PCIE-32GB': {'bfloat16': 14.0e12, 'float32': 14.0e12},
    'Tesla T4': {'bfloat16': 8.1e12, 'float32': 8.1e12},
    # TPU (Cloud TPU system-architecture pages, bf16 per chip: v2 45, v3 123,
    # v4 275, v5e 197, v5p 459, v6e 918). v2 / v3: two JAX devices (TensorCores)
    # per chip, so half the chip each. Default-precision fp32 = one bf16 pass.
    'TPU v2': {'bfloat16': 22.5e12, 'float32': 22.5e12},
    'TPU v3': {'bfloat16': 61.5e12, 'float32': 61.5e12},
    'TPU v4': {'bfloat16': 275e12, 'float32': 275e12},
    'TPU v5 lite': {'bfloat16': 197e12, 'float32': 197e12},   # v5e
    'TPU v5': {'bfloat16': 459e12, 'float32': 459e12},        # v5p
    'TPU v5p': {'bfloat16': 459e12, 'float32': 459e12},
    'TPU v6 lite': {'bfloat16': 918e12, 'float32': 918e12},   # v6e (Trillium)
}

# Fallback for device_kind strings not listed exactly: (whole words, table key),
# the more specific first ('H100 PCIe' before 'H100', 'GB200' before 'B200',
# 'A100' and 'A10G' before 'A10', 'L40S' and 'L40' before 'L4').
_FAMILIES = (
    ('h100 pcie', 'NVIDIA H100 PCIe'), ('h100 nvl', 'NVIDIA H100 NVL'),
    ('h100', 'NVIDIA H100 80GB HBM3'), ('h200 nvl', 'NVIDIA H200 NVL'),
    ('h200', 'NVIDIA H200'), ('gh200', 'NVIDIA H200'),  # Grace Hopper: H100 SXM compute
    ('gb200', 'NVIDIA GB200'), ('b200', 'NVIDIA B200'),
    ('b100', 'NVIDIA B100'),
    ('a100', 'NVIDIA A100-SXM4-80GB'), ('a10g', 'NVIDIA A10G'), ('a10', 'NVIDIA A10'),
    ('l40s', 'NVIDIA L40S'), ('l40', 'NVIDIA L40'), ('l4', 'NVIDIA L4'),
    ('rtx a6000', 'NVIDIA RTX A6000'), ('rtx 6000 ada', 'NVIDIA RTX 6000 Ada Generation'),
    ('rtx 4090', 'NVIDIA GeForce RTX 4090'), ('rtx 3090', 'NVIDIA GeForce RTX 3090'),
    ('v100-pcie', 'Tesla V100-PCIE-16GB'), ('v100', 'Tesla V100-SXM2-16GB'),
    ('t4', 'Tesla T4'),
    ('tpu v5 lite', 'TPU v5 lite'), ('tpu v5e', 'TPU v5 lite'), ('tpu v6', 'TPU v6 lite'),
    ('tpu v5', 'TPU v5'), ('tpu v4', 'TPU v4'), ('tpu v3', 'TPU v3'), ('tpu v2', 'TPU v2'),
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
    # Whole words: 'a10' must not match 'RTX A1000', nor 't4' any 'xt4...'.
    entry = next((PEAK_FLOPS[key] for words, key in _FAMILIES
                  if re.search(rf'\b{re.escape(words)}\b', kind)), None)
  return None if entry is None else entry[_dtype_name(dtype)]


def cpu_cores() -> int:
  """CPU cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def peak_flops_per_device(device: jax.Device | None = None, dtype='float32',
                          override: float = 0.0) -> float | None:
  """Peak FLOP/s of one device: `override` if > 0, else the table, else the CPU estimate.

  On CPU the XLA devices share one thread pool, so the machine's cores are
  divided among the local CPU devices. None for an accelerator the table lacks
  (MFU is then unknown; callers leave it out).
  """
  if override > 0:
    return float(override)
  device = jax.devices()[0] if device is None else device
  if device.platform == 'cpu':
    num_devices = max(len(jax.local_devices(backend='cpu')), 1)
    return CPU_DEFAULT_PEAK_FLOPS_PER_CORE * cpu_cores() / num_devices
  return lookup_peak_flops(device.device_kind, dtype)


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
