"""Multi-process runs through jax.distributed, 2 CPU processes on this machine.

Two processes x 4 CPU devices (gloo collectives) train the same steps as one
process x 8 devices, through the CLI on fsdp=8 and, in one session per side
(tests/multiprocess_meshes.py), on meshes where tensor, sequence or stage span
the processes; the checkpoint they write restores in one process (8 devices or
1); a process whose peer never starts exits with a clear message within its
initialization timeout. Every process runs under `timeout`: a multi-process job
that loses a member must not hang the suite.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from lm_jax import distributed
from lm_jax.metrics.writers import read_jsonl
from tests import multiprocess_meshes
from tests.run_helpers import QUICK, ROOT, cli_env, lm_jax_cmd, tiny_overrides

N = 3           # checkpoint every N steps, train 2N
LIMIT_S = 240   # per process
# fsdp=8: the params are split over both processes, so each writes half of them.
MESH = {'mesh.data': 1, 'mesh.fsdp': 8}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _flags(run_dir, **extra):
  return tiny_overrides(run_dir, 2 * N, **{
      'checkpoint.every': N, 'train.log_every': 1, 'train.global_batch_size': 8,
      'train.eval_every': 0, 'logging.tensorboard': False, **MESH, **extra})


def _dist_flags(port, n, i, devices, timeout=LIMIT_S):
  return [f'--config.distributed.coordinator_address=127.0.0.1:{port}',
          f'--config.distributed.num_processes={n}',
          f'--config.distributed.process_id={i}',
          f'--config.distributed.local_device_count={devices}',
          f'--config.distributed.initialization_timeout={timeout}']


def _start(args, log_path, devices, limit=LIMIT_S, cmd=None):
  """Starts `lm-jax ARGS` (or `cmd`) under `timeout`, stdout and stderr to log_path.*."""
  cmd = ['timeout', '-k', '10', str(limit), *(cmd or lm_jax_cmd(*args))]
  out = open(log_path + '.out', 'w')
  err = open(log_path + '.err', 'w')
  proc = subprocess.Popen(cmd, env=cli_env(devices), cwd=ROOT, stdout=out, stderr=err)
  proc.logs = (out, err, log_path)
  return proc


def _finish(proc, limit=LIMIT_S):
  """Waits; returns (returncode, stdout, stderr)."""
  proc.wait(timeout=limit + 30)
  out, err, path = proc.logs
  out.close()
  err.close()
  texts = []
  for suffix in ('.out', '.err'):
    with open(path + suffix) as f:
      texts.append(f.read())
  return (proc.returncode, *texts)


def _train_losses(run_dir):
  rows = [r for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
          if 'train/loss' in r]
  return {r['step']: r['train/loss'] for r in rows}, [r['step'] for r in rows]


def _params(run_dir, step):
  """The params of a checkpoint, read onto this (pytest) process's first device."""
  import jax
  path = os.path.join(run_dir, 'checkpoints', str(step), 'state')
  ckptr = ocp.StandardCheckpointer()
  meta = ckptr.metadata(path)
  # The saved shardings name the devices of the 2 processes: give a target.
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one),
                        getattr(meta, 'item_metadata', meta))
  return ckptr.restore(path, target)['params']


def _assert_close_trees(a, b, rtol=1e-5, atol=1e-6):
  import jax
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol,
                               err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """The reference run (1 process x 8 devices) and the 2 x 4 run, side by side."""
  base = tmp_path_factory.mktemp('mp')
  ref_dir, mp_dir = str(base / 'ref'), str(base / 'mp')
  port = _free_port()
  start = time.time()
  ref = _start(['train', '--config', QUICK, *_flags(ref_dir)], str(base / 'ref'), 8)
  procs = [_start(['train', '--config', QUICK, *_flags(mp_dir),
                   *_dist_flags(port, 2, i, 4)], str(base / f'mp{i}'), 4)
           for i in range(2)]
  results = [_finish(p) for p in [ref, *procs]]
  for rc, _, err in results:
    assert rc == 0, err[-4000:]
  print(f'reference + 2-process runs: {time.time() - start:.0f} s')
  return {'base': base, 'ref': ref_dir, 'mp': mp_dir,
          'mp_out': [r[1] for r in results[1:]], 'mp_err': [r[2] for r in results[1:]]}


def test_two_processes_match_one_process_step_for_step(runs):
  ref, ref_steps = _train_losses(runs['ref'])
  got, got_steps = _train_losses(runs['mp'])
  assert ref_steps == list(range(1, 2 * N + 1))
  assert got_steps == ref_steps  # one line per step: only process 0 wrote
  for step in ref_steps:
    assert got[step] == pytest.approx(ref[step], rel=1e-5), step
  for i, err in enumerate(runs['mp_err']):
    assert f'process {i} of 2, 4 local / 8 global devices' in err
  # Only process 0 prints metric lines.
  assert not any(line.startswith('step ') for line in runs['mp_out'][1].splitlines())
  assert any(line.startswith('step ') for line in runs['mp_out'][0].splitlines())


def test_two_process_checkpoint_is_one_checkpoint(runs):
  step_dir = os.path.join(runs['mp'], 'checkpoints', str(N))
  files = os.listdir(os.path.join(step_dir, 'data_iter'))
  assert 'metadata' in files and not any(f.startswith('process_') for f in files)
  # Read here, in one process with 8 devices: the params equal the reference's.
  _assert_close_trees(_params(runs['ref'], N), _params(runs['mp'], N))


MESHES_LIMIT_S = 900  # per process: 5 meshes (init + step + 2 evals compiled); 593 s seen at load 12


@pytest.fixture(scope='module')
def mesh_runs(tmp_path_factory):
  """tests/multiprocess_meshes.py in 1 process x 8 devices (the references) and in 2 x 4
  (the meshes), at once."""
  base = tmp_path_factory.mktemp('meshes')
  worker = [sys.executable, os.path.join(ROOT, 'tests', 'multiprocess_meshes.py')]
  port = _free_port()
  start = time.time()
  procs = [_start(None, str(base / 'ref'), 8, MESHES_LIMIT_S, [*worker, str(base / 'ref')])]
  procs += [_start(None, str(base / f'mp{i}'), 4, MESHES_LIMIT_S,
                   [*worker, str(base / 'mp'), str(port), '2', str(i), '4'])
            for i in range(2)]
  results = [_finish(p, MESHES_LIMIT_S) for p in procs]
  for rc, _, err in results:
    assert rc == 0, err[-4000:]
  print(f'{len(multiprocess_meshes.MESHES)} meshes, reference + 2-process sessions: '
        f'{time.time() - start:.0f} s')
  return {'base': base, 'out': [r[1] for r in results]}


@pytest.mark.parametrize('mesh', list(multiprocess_meshes.MESHES))
def test_two_processes_match_one_process_on_every_mesh(mesh_runs, mesh):
  """Each process loads the rows its devices hold (all of them when tensor, sequence or
  stage spans the processes): train and eval losses equal the 1-process run's."""
  ref = read_jsonl(os.path.join(mesh_runs['base'], 'ref', multiprocess_meshes.reference_of(mesh),
                                'metrics.jsonl'))
  got = read_jsonl(os.path.join(mesh_runs['base'], 'mp', mesh, 'metrics.jsonl'))
  keys = ('train/loss', 'eval/loss') if mesh in multiprocess_meshes.EVALUATED else ('train/loss',)
  for key in keys:
    want = {r['step']: r[key] for r in ref if key in r}
    have = {r['step']: r[key] for r in got if key in r}
    assert sorted(want) == sorted(have) and want, (key, want, have)
    for step in want:
      assert have[step] == pytest.approx(want[step], rel=1e-5), (key, step)


def test_interleaved_devices_get_every_other_row(mesh_runs):
  for i, out in enumerate(mesh_runs['out'][1:]):
    rows = list(range(i, 8, 2))
    assert f'interleaved rows ok: process {i} holds rows {rows}' in out


RESUMES = {'1x8': (8, {}), '1x1': (1, {'mesh.fsdp': 1})}  # processes x devices


@pytest.fixture(scope='module')
def resumed(runs):
  """Copies of the 2-process run cut back to step N, resumed by one process (both at once)."""
  procs = {}
  for name, (devices, mesh) in RESUMES.items():
    run_dir = str(runs['base'] / f'resume_{name}')
    shutil.copytree(runs['mp'], run_dir)
    for step in os.listdir(os.path.join(run_dir, 'checkpoints')):
      if step.isdigit() and int(step) > N:
        shutil.rmtree(os.path.join(run_dir, 'checkpoints', step))
    procs[name] = (run_dir, _start(['train', '--config', QUICK, *_flags(run_dir, **mesh)],
                                   os.path.join(run_dir, 'log'), devices))
  return {name: (run_dir, _finish(proc)) for name, (run_dir, proc) in procs.items()}


@pytest.mark.parametrize('name', list(RESUMES))
def test_two_process_checkpoint_resumes_in_one_process(runs, resumed, name):
  run_dir, (rc, _, err) = resumed[name]
  assert rc == 0, err[-4000:]
  assert f'resumed from step {N}' in err
  ref, _ = _train_losses(runs['ref'])
  got, steps = _train_losses(run_dir)
  assert steps == list(range(1, 2 * N + 1))  # the resumed run replaced steps > N
  for step in range(N + 1, 2 * N + 1):  # the data iterator resumed at batch N
    assert got[step] == pytest.approx(ref[step], rel=1e-5), step
  _assert_close_trees(_params(runs['ref'], 2 * N), _params(run_dir, 2 * N))


def test_missing_peer_exits_with_a_message_in_bounded_time(tmp_path):
  """Process 0 alone (no worker) and process 1 alone (no coordinator), at once."""
  timeout = 5
  ports = {present: _free_port() for present in (0, 1)}
  start = time.time()
  procs = {present: _start(
      ['train', '--config', QUICK, *_flags(str(tmp_path / f'run{present}')),
       *_dist_flags(port, 2, present, 4, timeout=timeout)],
      str(tmp_path / f'log{present}'), 4, limit=120) for present, port in ports.items()}
  for present, proc in procs.items():
    rc, _, err = _finish(proc)
    elapsed = time.time() - start
    assert rc == distributed.EXIT_PEERS_MISSING, err  # not 124 (timeout) or -6 (abort)
    assert elapsed < timeout + 60, elapsed
    assert f'process {present} of 2 waited at coordinator 127.0.0.1:{ports[present]}' in err
    assert 'for all 2 processes (the other 1 process' in err
    assert 'not all of them joined within' in err
    assert 'Traceback' not in err


@pytest.mark.parametrize('flags, message', [
    (['--config.distributed.coordinator_address=127.0.0.1:1234'],
     'needs the number of processes'),
    (['--config.distributed.coordinator_address=127.0.0.1:1234',
      '--config.distributed.num_processes=2'], 'each process needs its own id in 0..1'),
    (['--config.distributed.coordinator_address=localhost'], 'expected HOST:PORT'),
    (['--config.distributed.num_processes=2', '--config.distributed.process_id=0'],
     'coordinator_address is empty'),
], ids=['no_count', 'no_id', 'no_port', 'no_address'])
def test_incomplete_setup_is_a_config_error(tmp_path, flags, message):
  env = {k: v for k, v in cli_env().items() if not k.startswith(('SLURM_', 'TPU_'))}
  done = subprocess.run(
      ['timeout', '60', *lm_jax_cmd('train', '--config', QUICK,
                                    *tiny_overrides(str(tmp_path / 'run'), 2), *flags)],
      env=env, cwd=ROOT, capture_output=True, text=True, timeout=90)
  assert done.returncode == 2, done.stderr
  assert message in done.stderr
  assert 'Traceback' not in done.stderr


@pytest.mark.parametrize('env, want', [
    ({}, None),
    ({'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '1', 'SLURM_STEP_NODELIST': 'n1',
      'SLURM_PROCID': '0', 'SLURM_LOCALID': '0'}, None),
    ({'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '4', 'SLURM_STEP_NODELIST': 'n[1-2]',
      'SLURM_PROCID': '3', 'SLURM_LOCALID': '1'}, 'SLURM'),
    ({'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '4'}, None),  # batch script, not in srun
    ({'TPU_WORKER_HOSTNAMES': 'w-0'}, None),
    ({'TPU_WORKER_HOSTNAMES': 'w-0,w-1,w-2,w-3'}, 'TPU pod'),
    ({'MEGASCALE_COORDINATOR_ADDRESS': '10.0.0.2:8080'}, 'TPU pod'),
], ids=['none', 'slurm_1_task', 'slurm_step', 'slurm_batch_script', 'tpu_1_host',
        'tpu_pod', 'multislice'])
def test_detect_cluster(env, want):
  assert distributed.detect_cluster(env) == want
