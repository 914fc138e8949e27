"""tpu_setup/: the gcloud and sbatch commands the launch scripts generate (gcloud/sbatch never run)."""

import os
import shlex
import signal
import stat
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tpu_setup'))

import common  # noqa: E402  (tpu_setup/, put on the path above)
import slurm  # noqa: E402
import tpu  # noqa: E402

SLICE = ['--name', 'my-slice', '--zone', 'us-central2-b']
SSH = ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', 'my-slice', '--zone=us-central2-b',
       '--worker=all']
LAUNCH = ['launch', *SLICE, '--config', 'configs/gpt2_small.py',
          '--run-dir', '/mnt/shared/runs/gpt2', '--mesh', 'data=4,fsdp=4',
          '--config.train.steps=100', '--config.data.source=/mnt/shared/data/my corpus/*.txt',
          '--config.model.num_layers', '2', '--env', 'XLA_FLAGS=--xla_dump_to=/tmp/a b']
TRAIN = ['.venv/bin/lm-jax', 'train', '--config', 'configs/gpt2_small.py',
         '--config.logging.run_dir=/mnt/shared/runs/gpt2',
         '--config.mesh.data=4', '--config.mesh.fsdp=4', '--config.train.steps=100',
         '--config.data.source=/mnt/shared/data/my corpus/*.txt',
         '--config.model.num_layers', '2']


def commands(*argv):
  """The commands `tpu.py argv` would run."""
  return tpu.commands_for(list(argv))[1]


def remote_of(cmd):
  """The shell string after --command= in a gcloud ssh command."""
  assert cmd[:len(SSH) - 1] == SSH[:-1]
  (flag,) = [t for t in cmd if t.startswith('--command=')]
  return flag[len('--command='):]


def shell_tokens(script):
  """Splits a shell string into words and operators (';', '&', '>>', ...)."""
  lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
  lexer.whitespace_split = True
  return list(lexer)


def test_create_v4_32():
  (cmd,) = commands('create', *SLICE, '--accelerator', 'v4-32',
                    '--version', 'tpu-ubuntu2204-base', '--project', 'proj')
  assert cmd == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'create', 'my-slice',
                 '--zone=us-central2-b', '--project=proj', '--accelerator-type=v4-32',
                 '--version=tpu-ubuntu2204-base']


@pytest.mark.parametrize('accelerator, accel_type, version', [
    ('v4-32', 'v4-32', 'tpu-ubuntu2204-base'),
    ('v5p-32', 'v5p-32', 'v2-alpha-tpuv5'),
    ('v5e-16', 'v5litepod-16', 'v2-alpha-tpuv5-lite'),
    ('v6e-16', 'v6e-16', 'v2-alpha-tpuv6e'),
])
def test_create_queued_picks_runtime_per_generation(accelerator, accel_type, version):
  (cmd,) = commands('create', *SLICE, '--accelerator', accelerator, '--queued', '--spot')
  assert cmd == ['gcloud', 'compute', 'tpus', 'queued-resources', 'create', 'my-slice',
                 '--node-id=my-slice', '--zone=us-central2-b',
                 f'--accelerator-type={accel_type}', f'--runtime-version={version}', '--spot']


def test_create_unknown_generation_needs_version():
  with pytest.raises(SystemExit, match='pass --version'):
    commands('create', *SLICE, '--accelerator', 'v9-8')


def test_install_copies_a_tarball_to_every_worker():
  tar, scp, ssh = commands('install', *SLICE, '--source', '/src/lm_jax')
  assert tar[:3] == ['tar', '-czf', '/tmp/lm_jax.tar.gz'] and tar[-3:] == ['-C', '/src/lm_jax', '.']
  assert {'--exclude=./.git', '--exclude=./.venv', '--exclude=./runs'} <= set(tar)
  assert scp == ['gcloud', 'compute', 'tpus', 'tpu-vm', 'scp', '/tmp/lm_jax.tar.gz',
                 'my-slice:lm_jax.tar.gz', '--zone=us-central2-b', '--worker=all']
  assert ssh[:len(SSH)] == SSH
  steps = [s.strip() for s in remote_of(ssh).split('&&')]
  assert steps[:3] == ['mkdir -p lm_jax', 'tar -xzf lm_jax.tar.gz -C lm_jax',
                       'rm lm_jax.tar.gz']
  assert shell_tokens(steps[-1]) == ['~/.local/bin/uv', 'pip', 'install', '--python',
                                     '.venv/bin/python', '-e', '.', 'jax[tpu]']
  assert '--python 3.11 .venv' in remote_of(ssh)


def test_install_git_clone():
  (ssh,) = commands('install', *SLICE, '--repo-url', 'https://example.com/lm jax.git',
                    '--branch', 'main')
  remote = remote_of(ssh)
  assert "git clone --branch main 'https://example.com/lm jax.git' lm_jax" in remote
  assert 'git -C lm_jax pull --ff-only' in remote and '"jax[tpu]"' in remote


def test_launch_runs_lm_jax_on_all_workers_with_overrides():
  (ssh,) = commands(*LAUNCH)
  assert ssh[:len(SSH)] == SSH
  words = shell_tokens(remote_of(ssh))
  start = words.index('nohup')
  end = words.index('>>')
  assert words[start:end] == ['nohup', 'env', 'JAX_PLATFORMS=tpu',
                              'XLA_FLAGS=--xla_dump_to=/tmp/a b', *TRAIN]
  assert words[end:end + 7] == ['>>', 'logs/train.log', '2', '>&', '1', '<', '/dev/null']
  assert words[end + 7:end + 12] == ['&', 'echo', '$!', '>', 'logs/train.pid']
  assert words[:6] == ['set', '-e', ';', 'cd', 'lm_jax', ';']


def test_dry_run_prints_commands_that_parse_back(capsys, monkeypatch):
  monkeypatch.setattr(common.subprocess, 'run', pytest.fail)  # never executes anything
  tpu.main([*LAUNCH, '--dry-run'])
  (line,) = capsys.readouterr().out.splitlines()
  assert [shlex.split(line)] == commands(*LAUNCH)


def test_without_dry_run_commands_are_executed_with_check(monkeypatch):
  calls = []
  monkeypatch.setattr(common.subprocess, 'run', lambda cmd, check: calls.append((cmd, check)))
  tpu.main(['delete', *SLICE])
  assert calls == [(['gcloud', 'compute', 'tpus', 'tpu-vm', 'delete', 'my-slice',
                     '--zone=us-central2-b', '--quiet'], True)]


def test_launch_rejects_arguments_that_are_not_overrides():
  with pytest.raises(SystemExit, match="unrecognized argument 'oops'"):
    commands(*LAUNCH, 'oops')
  with pytest.raises(SystemExit, match='AXIS=SIZE'):
    commands(*LAUNCH, '--mesh', 'data4')


def test_logs_stop_delete():
  (logs,) = commands('logs', *SLICE, '--worker', '3', '--lines', '20')
  assert logs[:len(SSH) - 1] == SSH[:-1] and '--worker=3' in logs
  assert shell_tokens(remote_of(logs)) == ['tail', '-n', '20', '-F', 'lm_jax/logs/train.log']
  (stop,) = commands('stop', *SLICE)
  assert stop[:len(SSH)] == SSH and 'kill -s TERM "$(cat logs/train.pid)"' in remote_of(stop)
  (delete,) = commands('delete', *SLICE, '--queued')
  assert delete == ['gcloud', 'compute', 'tpus', 'queued-resources', 'delete', 'my-slice',
                    '--zone=us-central2-b', '--force', '--quiet']


def test_launch_and_stop_scripts_work_in_bash(tmp_path):
  """Runs the remote launch/stop shell locally against a fake lm-jax (no gcloud)."""
  venv_bin = tmp_path / 'lm_jax' / '.venv' / 'bin'
  venv_bin.mkdir(parents=True)
  fake = venv_bin / 'lm-jax'
  fake.write_text('#!/bin/sh\nprintf "%s\\n" "$JAX_PLATFORMS" "$@" > args.txt\nexec sleep 30\n')
  fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  env = {**os.environ, 'HOME': str(tmp_path)}
  run = lambda cmd: subprocess.run(['bash', '-c', remote_of(cmd)], cwd=tmp_path, env=env,
                                   check=True, capture_output=True, text=True, timeout=10)
  run(commands(*LAUNCH)[0])
  pid = int((tmp_path / 'lm_jax' / 'logs' / 'train.pid').read_text())
  try:
    args_file = tmp_path / 'lm_jax' / 'args.txt'
    deadline = time.time() + 5
    while not args_file.exists() or not args_file.read_text().endswith('2\n'):
      assert time.time() < deadline, 'fake lm-jax did not start'
      time.sleep(0.02)
    assert args_file.read_text().splitlines() == ['tpu', *TRAIN[1:]]
    run(commands('stop', *SLICE)[0])
    deadline = time.time() + 5
    while _alive(pid):
      assert time.time() < deadline, 'stop did not end the process'
      time.sleep(0.02)
    assert not (tmp_path / 'lm_jax' / 'logs' / 'train.pid').exists()
  finally:
    if _alive(pid):
      os.kill(pid, signal.SIGKILL)


def _alive(pid):
  """Whether process `pid` exists and is not a zombie (nohup ... & reparents it away from us)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().split(')')[-1].split()[0] != 'Z'
  except FileNotFoundError:
    return False


# ---------------------------------------------------------------------------
# SLURM

SLURM = ['--nodes', '2', '--gpus-per-node', '8', '--config', 'configs/gpt2_small.py',
         '--run-dir', '/shared/runs/gpt2', '--workdir', '/shared/lm_jax',
         '--config.train.steps=100']


def slurm_script(*argv):
  """The sbatch script text for `slurm.py argv`."""
  args, extra = slurm.build_parser().parse_known_args(list(argv))
  return slurm.sbatch_script(args, common.check_overrides(extra))


def test_sbatch_script_2_nodes_x_8_gpus():
  script = slurm_script(*SLURM, '--mesh', 'data=16', '--partition', 'gpu')
  lines = script.splitlines()
  assert lines[0] == '#!/bin/bash'
  options = [line.split(None, 1)[1] for line in lines if line.startswith('#SBATCH')]
  assert options == ['--job-name=lm_jax', '--nodes=2', '--ntasks-per-node=8',
                     '--gpus-per-node=8', '--partition=gpu']
  assert 'cd /shared/lm_jax' in lines and 'source .venv/bin/activate' in lines
  assert 'export JAX_PLATFORMS=cuda' in lines
  (srun,) = [line for line in lines if line.startswith('srun')]
  assert shlex.split(srun) == ['srun', '--kill-on-bad-exit=1', '--label', 'lm-jax', 'train',
                               '--config', 'configs/gpt2_small.py',
                               '--config.logging.run_dir=/shared/runs/gpt2',
                               '--config.mesh.data=16', '--config.train.steps=100']
  assert subprocess.run(['bash', '-n'], input=script, text=True).returncode == 0


def test_sbatch_dry_run_prints_and_writes_nothing(tmp_path, capsys, monkeypatch):
  monkeypatch.setattr(common.subprocess, 'run', pytest.fail)
  monkeypatch.chdir(tmp_path)
  slurm.main([*SLURM, '--dry-run'])
  out = capsys.readouterr().out
  assert '#SBATCH --ntasks-per-node=8' in out and out.splitlines()[-1] == 'sbatch lm_jax.sbatch'
  assert os.listdir(tmp_path) == []


def test_sbatch_submit_writes_the_script_then_calls_sbatch(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(common.subprocess, 'run', lambda cmd, check: calls.append(cmd))
  path = str(tmp_path / 'jobs' / 'gpt2.sbatch')
  slurm.main([*SLURM, '--script', path, '--env', 'NCCL_DEBUG=WARN'])
  assert calls == [['sbatch', path]]
  assert open(path).read() == slurm_script(*SLURM, '--env', 'NCCL_DEBUG=WARN')
