"""Worker for tests/test_multiprocess.py: a few training steps on each of several meshes.

  python tests/multiprocess_meshes.py RUN_ROOT                      # 1 process: REFERENCES
  python tests/multiprocess_meshes.py RUN_ROOT PORT N ID DEVICES    # process ID of N: MESHES

Each mesh trains with lm_jax.launch.train (what `lm-jax train` runs) in its
own run dir RUN_ROOT/<mesh name>, so its train and eval losses land in that
dir's metrics.jsonl. Starting jax once and looping over the meshes keeps the
test to one start-up per process instead of one per mesh. In a multi-process
session it first checks a layout the meshes below cannot produce: a mesh whose
devices alternate between the processes, so each process holds every other
row of the batch.
"""

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STEPS = 3
# name: mesh overrides. In 2 processes x 4 devices, tensor / sequence / stage
# span the processes in all but data2_tensor4 and fsdp2_tensor4, so the batch
# dim is replicated across the processes (each loads all 8 rows).
MESHES = {
    'data1_tensor8': {'mesh.data': 1, 'mesh.tensor': 8},
    'data2_tensor4': {'mesh.data': 2, 'mesh.tensor': 4},
    'fsdp2_tensor4': {'mesh.data': 1, 'mesh.fsdp': 2, 'mesh.tensor': 4},
    'sequence8': {'mesh.data': 1, 'mesh.sequence': 8},
    'stage2_fsdp4': {'mesh.data': 1, 'mesh.stage': 2, 'mesh.fsdp': 4,
                     'mesh.pipeline_microbatches': 2},
}
# The 1-process x 8-device runs they are compared with: data parallel for the
# unpipelined meshes (the same model and init), the same mesh for the pipelined
# one (its layers are stacked per stage). Two compiles instead of five.
REFERENCES = {'data8': {'mesh.data': 8}, 'stage2_fsdp4': MESHES['stage2_fsdp4']}
# Evaluation (the validation rows) on one mesh whose processes load all rows and
# one whose processes load half; the others skip its compile to keep the test short.
EVALUATED = ('data1_tensor8', 'data2_tensor4', 'data8')


def reference_of(name: str) -> str:
  """The REFERENCES entry that MESHES[name] is compared with."""
  return 'stage2_fsdp4' if 'mesh.stage' in MESHES[name] else 'data8'


def mesh_config(run_root: str, name: str, mesh: dict):
  """The quickstart runlocal config with 8 heads (tensor=8), batch 8 and `mesh`."""
  from lm_jax.config.loader import apply_overrides, load_config
  config = load_config(os.path.join(ROOT, 'configs', 'quickstart.py') + ':runlocal')
  flags = {'logging.run_dir': os.path.join(run_root, name),
           'data.cache_dir': os.path.join(run_root, 'cache'),
           'model.num_heads': 8, 'train.global_batch_size': 8, 'train.steps': STEPS,
           'train.log_every': 1, 'train.eval_every': STEPS if name in EVALUATED else 0,
           'train.eval_batches': 2,
           'checkpoint.every': 0, 'logging.progress': False, 'logging.tensorboard': False,
           **mesh}
  return apply_overrides(config, [f'--config.{k}={v}' for k, v in flags.items()])


def check_interleaved_rows() -> None:
  """data=8 over devices alternating between the processes: this process holds rows
  p, p + P, ...; the assembled array must equal the global batch on every process."""
  import jax
  import numpy as np
  from jax.experimental import multihost_utils
  from lm_jax.parallel.batch_rows import global_array, local_rows
  from lm_jax.parallel.mesh import batch_sharding, make_mesh
  from lm_jax.parallel.rules import rules_for_mesh
  count, me = jax.process_count(), jax.process_index()
  by_process = [[d for d in jax.devices() if d.process_index == p] for p in range(count)]
  devices = [d for group in zip(*by_process) for d in group]
  shape = {'data': len(devices)}
  sharding = batch_sharding(make_mesh(shape, devices), rules_for_mesh(shape))
  global_BxL = np.arange(len(devices) * 3, dtype=np.int32).reshape(len(devices), 3)
  rows = local_rows(sharding, global_BxL.shape)
  assert rows.tolist() == list(range(me, len(devices), count)), rows
  array = global_array(global_BxL[rows], rows, len(devices), sharding)
  gathered = multihost_utils.process_allgather(array, tiled=True)
  np.testing.assert_array_equal(gathered, global_BxL)
  print(f'interleaved rows ok: process {me} holds rows {rows.tolist()}', flush=True)


def main(argv):
  run_root = argv[0]
  if len(argv) > 1:
    from lm_jax import distributed
    from lm_jax.config.defaults import base_config
    dist = base_config().distributed
    port, n, i, devices = map(int, argv[1:5])
    dist.update(coordinator_address=f'127.0.0.1:{port}', num_processes=n, process_id=i,
                local_device_count=devices, initialization_timeout=120)
    distributed.initialize(dist)
    start = time.time()
    check_interleaved_rows()
    print(f'interleaved check in {time.time() - start:.1f} s', flush=True)
  from lm_jax.launch import train
  for name, mesh in (MESHES if len(argv) > 1 else REFERENCES).items():
    start = time.time()
    train(mesh_config(run_root, name, mesh))
    print(f'trained {name} in {time.time() - start:.1f} s', flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
