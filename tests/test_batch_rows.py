"""Which batch rows each process loads, for hand-written meshes and process layouts.

The 8 simulated devices of this process are laid over several pretend
processes by mesh position (`procs_at`, a hand-written grid of process ids of
the mesh's shape); the expected rows are written out by hand from the batch
rule (batch split over data, then fsdp; replicated over stage, sequence and
tensor).
"""

import jax
import numpy as np
import pytest

from lm_jax.parallel.batch_rows import global_array, local_rows, rows_by_process
from lm_jax.parallel.mesh import batch_sharding, make_mesh
from lm_jax.parallel.rules import MESH_AXES, rules_for_mesh

B, L = 8, 4
ALL = list(range(8))

# name: (mesh shape, process id at each mesh position [data, stage, fsdp, sequence, tensor],
#        {process: rows of a global batch of 8})
CASES = {
    'data8_halves': ({'data': 8}, [0, 0, 0, 0, 1, 1, 1, 1],
                     {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]}),
    'data8_interleaved': ({'data': 8}, [0, 1, 0, 1, 0, 1, 0, 1],
                          {0: [0, 2, 4, 6], 1: [1, 3, 5, 7]}),
    'data8_one_device_each': ({'data': 8}, ALL, {p: [p] for p in range(8)}),
    'tensor8_halves': ({'data': 1, 'tensor': 8}, [0, 0, 0, 0, 1, 1, 1, 1],
                       {0: ALL, 1: ALL}),
    'sequence8_halves': ({'data': 1, 'sequence': 8}, [0, 0, 0, 0, 1, 1, 1, 1],
                         {0: ALL, 1: ALL}),
    'data2_tensor4_by_data': ({'data': 2, 'tensor': 4}, [[0, 0, 0, 0], [1, 1, 1, 1]],
                              {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]}),
    'data2_tensor4_by_tensor': ({'data': 2, 'tensor': 4}, [[0, 0, 1, 1], [0, 0, 1, 1]],
                                {0: ALL, 1: ALL}),
    'fsdp2_tensor4_by_fsdp': ({'data': 1, 'fsdp': 2, 'tensor': 4}, [[0, 0, 0, 0], [1, 1, 1, 1]],
                              {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]}),
    'stage2_fsdp4_by_stage': ({'data': 1, 'stage': 2, 'fsdp': 4}, [[0, 0, 0, 0], [1, 1, 1, 1]],
                              {0: ALL, 1: ALL}),
    'stage2_fsdp4_by_fsdp': ({'data': 1, 'stage': 2, 'fsdp': 4}, [[0, 0, 1, 1], [0, 0, 1, 1]],
                             {0: [0, 1, 2, 3], 1: [4, 5, 6, 7]}),
    # Batch shard (d, f) = rows 4d + 2f, 4d + 2f + 1.
    'd2f2t2_by_fsdp': ({'data': 2, 'fsdp': 2, 'tensor': 2},
                       [[[0, 0], [1, 1]], [[0, 0], [1, 1]]],
                       {0: [0, 1, 4, 5], 1: [2, 3, 6, 7]}),
    'd2f2t2_four_by_batch_shard': ({'data': 2, 'fsdp': 2, 'tensor': 2},
                                   [[[0, 0], [1, 1]], [[2, 2], [3, 3]]],
                                   {0: [0, 1], 1: [2, 3], 2: [4, 5], 3: [6, 7]}),
    'd2f2t2_by_tensor': ({'data': 2, 'fsdp': 2, 'tensor': 2},
                         [[[0, 1], [0, 1]], [[0, 1], [0, 1]]], {0: ALL, 1: ALL}),
    'd2_seq2_t2_by_sequence': ({'data': 2, 'sequence': 2, 'tensor': 2},
                               [[[0, 0], [1, 1]], [[0, 0], [1, 1]]], {0: ALL, 1: ALL}),
    'd2_stage4_three_processes': ({'data': 2, 'stage': 4},
                                  [[0, 0, 1, 1], [1, 2, 2, 2]],
                                  {0: [0, 1, 2, 3], 1: ALL, 2: [4, 5, 6, 7]}),
}


def _sharding(mesh_shape):
  mesh = make_mesh(mesh_shape, jax.devices())
  return mesh, batch_sharding(mesh, rules_for_mesh(mesh_shape))


@pytest.mark.parametrize('case', sorted(CASES))
def test_rows_of_each_process(case):
  mesh_shape, procs, want = CASES[case]
  mesh, sharding = _sharding(mesh_shape)
  grid = np.asarray(procs).reshape(mesh.devices.shape)  # the size-1 axes too
  process_at = {d: int(p) for d, p in zip(mesh.devices.flat, grid.flat)}
  got = rows_by_process(sharding, (B, L), process_of=process_at.__getitem__)
  assert {p: r.tolist() for p, r in got.items()} == want


def test_one_process_loads_every_row():
  for mesh_shape in ({'data': 8}, {'data': 2, 'fsdp': 2, 'tensor': 2}, {'sequence': 8}):
    _, sharding = _sharding(mesh_shape)
    assert local_rows(sharding, (B, L)).tolist() == ALL


@pytest.mark.parametrize('mesh_shape', [{'data': 8}, {'data': 2, 'fsdp': 2, 'tensor': 2},
                                        {'data': 1, 'stage': 2, 'fsdp': 4}])
def test_global_array_puts_its_true_rows_on_every_device(mesh_shape):
  _, sharding = _sharding(mesh_shape)
  batch_BxL = np.arange(B * L, dtype=np.int32).reshape(B, L)
  array = global_array(batch_BxL, np.arange(B), B, sharding)
  np.testing.assert_array_equal(np.asarray(array), batch_BxL)
  batch_axes = [a for a in MESH_AXES if a in ('data', 'fsdp')]
  per_shard = B // int(np.prod([mesh_shape.get(a, 1) for a in batch_axes]))
  for shard in array.addressable_shards:
    rows = np.arange(B)[shard.index[0]]
    assert len(rows) == per_shard
    np.testing.assert_array_equal(np.asarray(shard.data), batch_BxL[rows])


def test_global_array_refuses_rows_it_was_not_given():
  _, sharding = _sharding({'data': 8})
  with pytest.raises(ValueError, match='needs rows 4..4 of the batch'):
    global_array(np.zeros((4, L), np.int32), np.array([0, 1, 2, 3]), B, sharding)
