"""Multi-process runs: `jax.distributed.initialize` from the `distributed` config.

`initialize(config.distributed)` must run before anything touches a jax device
(the CLI calls it first thing in `train` and `eval`). It picks one of three cases:

  explicit   `coordinator_address` is set: `num_processes` and `process_id` are
             required; every process runs the same command with its own id.
  automatic  a TPU pod (TPU_WORKER_HOSTNAMES / TPU_PROCESS_ADDRESSES with more
             than one host, MEGASCALE_* multislice variables, or a Cloud TPU VM)
             or a SLURM step with more than one task (inside `srun`):
             `jax.distributed.initialize()` with no arguments, jax reads the rest.
  single     anything else: no call, one process.

`local_device_count` > 0 sets `jax_num_cpu_devices` (simulated CPU devices per
process; TPUs and GPUs ignore it).

A process whose peers never arrive does not raise in jax: its C++ client aborts
the process (SIGABRT) when the deadline passes, after a log line that does not
say what was missing. So a watchdog thread prints which coordinator and how
many processes it was waiting for, and exits with status 1, after
`initialization_timeout` seconds; jax's own deadline is set a little later,
as a fallback if the watchdog cannot run.
"""

import logging
import os
import sys
import threading
import time

from lm_jax.errors import ConfigError

EXIT_PEERS_MISSING = 1
_JAX_GRACE_S = 30  # jax's own deadline comes this much after the watchdog's

_TPU_HOST_LISTS = ('TPU_WORKER_HOSTNAMES', 'TPU_PROCESS_ADDRESSES')
_SLURM_STEP_VARS = ('SLURM_STEP_NODELIST', 'SLURM_PROCID', 'SLURM_LOCALID')


def _int_env(env, name) -> int:
  try:
    return int(env.get(name, ''))
  except ValueError:
    return 0


def detect_cluster(environ=None) -> str | None:
  """'SLURM' or 'TPU pod' when the environment is a multi-process job; else None.

  Reads environment variables only (a Cloud TPU VM without them is recognised
  later, by jax itself, see `initialize`).
  """
  env = os.environ if environ is None else environ
  if 'SLURM_JOB_ID' in env:
    tasks = _int_env(env, 'SLURM_STEP_NUM_TASKS') or _int_env(env, 'SLURM_NTASKS')
    if tasks > 1:
      if all(v in env for v in _SLURM_STEP_VARS):
        return 'SLURM'
      logging.warning(
          'SLURM job %s has %d tasks but this process is not in an srun step '
          '(%s unset): running as a single process; launch with `srun lm-jax ...` '
          'to use every task', env['SLURM_JOB_ID'], tasks,
          '/'.join(v for v in _SLURM_STEP_VARS if v not in env))
  for name in _TPU_HOST_LISTS:
    hosts = [h for h in env.get(name, '').split(',') if h.strip()]
    if len(hosts) > 1:
      return 'TPU pod'
  if env.get('MEGASCALE_COORDINATOR_ADDRESS'):
    return 'TPU pod'
  return None


def _on_cloud_tpu_vm() -> bool:
  """Whether jax found TPU chips and libtpu on this host (set at `import jax`)."""
  try:
    from jax._src import cloud_tpu_init  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  return bool(getattr(cloud_tpu_init, 'running_in_cloud_tpu_vm', False))


def _check(dist_cfg) -> None:
  """ConfigError for an incomplete or inconsistent explicit setup."""
  address = dist_cfg.coordinator_address
  n, i = dist_cfg.num_processes, dist_cfg.process_id
  if dist_cfg.initialization_timeout < 1:
    raise ConfigError(f'config.distributed.initialization_timeout='
                      f'{dist_cfg.initialization_timeout!r}: must be >= 1 (seconds)')
  if dist_cfg.local_device_count < 0:
    raise ConfigError(f'config.distributed.local_device_count={dist_cfg.local_device_count!r}:'
                      ' must be >= 0 (0: the platform default)')
  if not address:
    return
  host, sep, port = address.rpartition(':')
  if not sep or not host or not port.isdigit():
    raise ConfigError(f'config.distributed.coordinator_address={address!r}: expected '
                      'HOST:PORT of process 0, e.g. 10.0.0.2:1234')
  if n < 1:
    raise ConfigError(
        f'config.distributed.coordinator_address={address!r} needs the number of processes: '
        'set --config.distributed.num_processes=N (the same on every process)')
  if not 0 <= i < n:
    raise ConfigError(
        f'config.distributed.process_id={i!r}: with coordinator_address={address!r} each '
        f'process needs its own id in 0..{n - 1} (num_processes={n}): set '
        '--config.distributed.process_id=I (0 on the coordinator\'s host)')


def _start_watchdog(timeout_s: int, what: str) -> threading.Timer:
  """After timeout_s, prints that the processes did not all join and exits 1."""
  start = time.monotonic()

  def fire():
    sys.stdout.flush()
    print(f'error: jax.distributed: {what}, but not all of them joined within '
          f'{time.monotonic() - start:.0f} s (config.distributed.initialization_timeout='
          f'{timeout_s}). Start the same command on every process, each with its own '
          'process id and the same coordinator address and process count; check that '
          'the coordinator\'s host and port are reachable from every host.',
          file=sys.stderr, flush=True)
    os._exit(EXIT_PEERS_MISSING)  # the jax client is blocked in C++; nothing to unwind

  timer = threading.Timer(timeout_s, fire)
  timer.daemon = True
  timer.start()
  return timer


def initialize(dist_cfg) -> str:
  """Starts jax's multi-controller runtime when the config or cluster asks for it.

  Returns 'explicit', 'SLURM', 'TPU pod', 'Cloud TPU VM', 'already' or 'single'.
  Raises ConfigError for an incomplete explicit setup; exits 1 (after one
  message on stderr) when the other processes do not all join in time.
  """
  _check(dist_cfg)
  address = dist_cfg.coordinator_address
  cluster = None if address else detect_cluster()
  if not address and not cluster and (dist_cfg.num_processes > 0 or dist_cfg.process_id >= 0):
    raise ConfigError(
        'config.distributed.num_processes / process_id are set but '
        'config.distributed.coordinator_address is empty and no SLURM step or TPU pod was '
        'detected: set --config.distributed.coordinator_address=HOST:PORT (process 0\'s host)')

  import jax  # pylint: disable=g-import-not-at-top
  if dist_cfg.local_device_count > 0:
    jax.config.update('jax_num_cpu_devices', dist_cfg.local_device_count)
  if jax.distributed.is_initialized():  # e.g. a launcher that initialized already
    logging.info('jax.distributed already initialized: process %d of %d',
                 jax.process_index(), jax.process_count())
    return 'already'
  if not address and not cluster:
    if not _on_cloud_tpu_vm():
      return 'single'
    cluster = 'Cloud TPU VM'  # jax reads pod membership from the TPU metadata

  timeout = dist_cfg.initialization_timeout
  if address:
    n, i = dist_cfg.num_processes, dist_cfg.process_id
    what = (f'process {i} of {n} waited at coordinator {address} for all {n} processes '
            f'(the other {n - 1} process{"es" if n > 2 else ""}: ids '
            + ', '.join(str(p) for p in range(n) if p != i) + ')')
    kwargs = dict(coordinator_address=address, num_processes=n, process_id=i)
    how = 'explicit'
  else:
    n = dist_cfg.num_processes or None
    i = dist_cfg.process_id if dist_cfg.process_id >= 0 else None
    what = f'this process of a {cluster} job waited for the job\'s other processes'
    kwargs = dict(num_processes=n, process_id=i)
    how = cluster
  logging.info('jax.distributed (%s): %s; waiting up to %d s', how,
               what.replace(' waited', ' waits'), timeout)
  watchdog = _start_watchdog(timeout, what)
  try:
    jax.distributed.initialize(initialization_timeout=timeout + _JAX_GRACE_S, **kwargs)
  except (ValueError, TypeError) as e:  # jax could not work out the setup
    raise ConfigError(f'jax.distributed.initialize ({how}) failed: {e}. Give the setup '
                      'explicitly: --config.distributed.coordinator_address=HOST:PORT '
                      '--config.distributed.num_processes=N '
                      '--config.distributed.process_id=I') from e
  finally:
    watchdog.cancel()
  logging.info('jax.distributed: process %d of %d, %d local / %d global devices',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return how
