"""Which rows of each global batch a process loads, and the global array built from them.

A process must hold, for every device it addresses, the rows that device gets
under the batch sharding. Which rows those are depends on the whole mesh, not
on the process count: when `tensor`, `sequence` or `stage` spans processes the
batch dim is replicated across them, so each process needs the same rows (or
all of them); when only `data` / `fsdp` span processes each gets a share, which
need not be contiguous. The rows come from the sharding itself
(`devices_indices_map`), so every layout is covered by one rule.
"""

from typing import Callable

import jax
import numpy as np


def rows_by_process(sharding: jax.sharding.Sharding, global_shape: tuple[int, ...],
                    process_of: Callable[[jax.Device], int] | None = None
                    ) -> dict[int, np.ndarray]:
  """process index -> the sorted global row indices its devices hold of a batch
  of `global_shape` ([B, ...], rows along dim 0).

  `process_of` maps a device to its process (default: `device.process_index`);
  tests pass their own to lay a mesh of one process's devices over several.
  """
  process_of = process_of or (lambda d: d.process_index)
  # Row ranges, not rows: a pod has thousands of devices, but few distinct ranges.
  ranges: dict[int, set[tuple[int, int, int]]] = {}
  for device, index in sharding.devices_indices_map(tuple(global_shape)).items():
    ranges.setdefault(process_of(device), set()).add(index[0].indices(global_shape[0]))
  return {p: np.unique(np.concatenate([np.arange(*r) for r in sorted(rs)]))
          for p, rs in sorted(ranges.items())}


def local_rows(sharding: jax.sharding.Sharding, global_shape: tuple[int, ...]) -> np.ndarray:
  """The sorted global row indices of each batch that this process's devices hold."""
  return rows_by_process(sharding, global_shape)[jax.process_index()]


def global_array(local_BxX: np.ndarray, rows_B: np.ndarray, global_batch_size: int,
                 sharding: jax.sharding.Sharding) -> jax.Array:
  """The [global_batch_size, ...] jax.Array whose row rows_B[i] is local_BxX[i] (this
  process's rows, in global order) and whose other rows live on other processes."""
  if len(local_BxX) != len(rows_B):
    raise ValueError(f'{len(local_BxX)} local rows for {len(rows_B)} row indices')
  global_shape = (global_batch_size,) + local_BxX.shape[1:]

  def device_rows(index):
    start, stop, _ = index[0].indices(global_batch_size)  # shards are contiguous ranges
    # rows_B is increasing and holds all of start..stop-1, so they sit side by side in it.
    first = int(np.searchsorted(rows_B, start))
    if not np.array_equal(rows_B[first:first + stop - start], np.arange(start, stop)):
      raise ValueError(f'a local device needs rows {start}..{stop - 1} of the batch, '
                       f'which this process did not load')
    return local_BxX[(slice(first, first + stop - start),) + tuple(index[1:])]

  return jax.make_array_from_callback(global_shape, sharding, device_rows)
