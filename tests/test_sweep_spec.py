"""Sweep files: grid / sample / list expansion, run names, --dry-run and --emit (nothing trains)."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from lm_jax.errors import ConfigError
from lm_jax.sweep import LogUniform, Sweep, Uniform, grid, sample
from lm_jax.sweep.command import sweep_command
from lm_jax.sweep.runner import STATUS_FILE, run_state, train_args
from lm_jax.sweep.spec import MAX_NAME_LEN, expand, run_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tpu_setup'))

import slurm  # noqa: E402  (tpu_setup/, put on the path above)

QUICK = 'configs/quickstart.py:runlocal'
BASE = '--config.logging.progress=false'


def test_grid_is_every_combination_last_key_fastest():
  assert grid({'optimizer.lr': [1e-3, 3e-3], '--config.model.d_model': [32, 64, 128]}) == [
      {'optimizer.lr': 1e-3, 'model.d_model': 32},
      {'optimizer.lr': 1e-3, 'model.d_model': 64},
      {'optimizer.lr': 1e-3, 'model.d_model': 128},
      {'optimizer.lr': 3e-3, 'model.d_model': 32},
      {'optimizer.lr': 3e-3, 'model.d_model': 64},
      {'optimizer.lr': 3e-3, 'model.d_model': 128},
  ]


def test_explicit_list_gives_names_dirs_and_flags():
  sweep = Sweep(name='s', config=QUICK, root='out',
                runs=[{'optimizer.lr': 0.001}, {'optimizer.lr': 0.01, 'model.num_layers': 3}],
                fixed={'train.steps': 7})
  runs = expand(sweep)
  assert [(r.name, r.run_dir, r.overrides) for r in runs] == [
      ('lr=0.001', 'out/s/lr=0.001',
       [BASE, '--config.train.steps=7', '--config.optimizer.lr=0.001']),
      ('lr=0.01,num_layers=3', 'out/s/lr=0.01,num_layers=3',
       [BASE, '--config.train.steps=7', '--config.optimizer.lr=0.01',
        '--config.model.num_layers=3']),
  ]


def test_sample_follows_its_distributions_and_its_seed():
  space = {'optimizer.lr': LogUniform(1e-4, 1e-2), 'model.dropout': Uniform(0.0, 0.5),
           'model.num_layers': [2, 4, 8]}
  draws = sample(space, 3000, seed=1)
  assert draws == sample(space, 3000, seed=1)
  assert draws[:20] != sample(space, 20, seed=2)
  lrs = [d['optimizer.lr'] for d in draws]
  assert all(1e-4 <= lr <= 1e-2 for lr in lrs)
  # log-uniform: half the mass below the geometric midpoint 1e-3, a quarter below 10^-3.5
  assert abs(sum(lr < 1e-3 for lr in lrs) / len(lrs) - 0.5) < 0.04
  assert abs(sum(lr < 10**-3.5 for lr in lrs) / len(lrs) - 0.25) < 0.04
  drops = [d['model.dropout'] for d in draws]
  assert all(0 <= p <= 0.5 for p in drops) and abs(sum(drops) / len(drops) - 0.25) < 0.01
  for layers in (2, 4, 8):
    share = sum(d['model.num_layers'] == layers for d in draws) / len(draws)
    assert abs(share - 1 / 3) < 0.04
  # rounded to 3 significant digits, so the run names are the values
  assert all(float(f'{lr:.3g}') == lr for lr in lrs)


def test_run_names_are_filesystem_safe_unique_and_bounded():
  assert run_name({'data.source': '/data/my corpus/*.txt'}, ['data.source']) == \
      'source=_data_my_corpus__.txt'
  assert run_name({'model.dropout': 0.1, 'optimizer.dropout': 0.2},
                  ['model.dropout', 'optimizer.dropout']) == \
      'model.dropout=0.1,optimizer.dropout=0.2'
  long = run_name({'data.source': 'x' * 300}, ['data.source'])
  assert len(long) == MAX_NAME_LEN and long != run_name({'data.source': 'x' * 301},
                                                         ['data.source'])
  with pytest.raises(ConfigError, match="runs 0 and 1 are both named 'lr=0.001'"):
    expand(Sweep(name='s', config=QUICK, runs=[{'optimizer.lr': 0.001}] * 2))
  with pytest.raises(ConfigError, match='logging.run_dir is set by the sweep'):
    expand(Sweep(name='s', config=QUICK, runs=[{'logging.run_dir': 'x'}]))
  with pytest.raises(ConfigError, match='sweep name'):
    expand(Sweep(name='a/b', config=QUICK, runs=[{}]))


def test_state_is_done_only_for_the_same_arguments(tmp_path):
  (run,) = expand(Sweep(name='s', config=QUICK, root=str(tmp_path), runs=[{'train.steps': 3}]))
  assert run_state(QUICK, run) == 'new'
  os.makedirs(os.path.join(run.run_dir, 'checkpoints', '2'))
  assert run_state(QUICK, run) == 'partial'
  status = {'status': 'done', 'args': train_args(QUICK, run)}
  with open(os.path.join(run.run_dir, STATUS_FILE), 'w') as f:
    json.dump(status, f)
  assert run_state(QUICK, run) == 'done'
  assert run_state('configs/quickstart.py', run) == 'partial'  # another config: not done


def _write_sweep(tmp_path, body: str) -> str:
  path = tmp_path / 'my_sweep.py'
  path.write_text('from lm_jax.sweep import Sweep, grid\n\n' + textwrap.dedent(body))
  return str(path)


GRID_SWEEP = '''
def get_sweep():
  return Sweep(name='lr_width', config='configs/quickstart.py:runlocal',
               runs=grid({'optimizer.lr': [0.001, 0.003], 'model.d_model': [32, 64]}),
               fixed={'train.steps': 6})
'''


@pytest.fixture
def in_repo(monkeypatch):
  monkeypatch.chdir(ROOT)  # sweep files name their config relative to the repository


def test_dry_run_lists_state_name_dir_and_overrides(tmp_path, capsys, in_repo):
  path = _write_sweep(tmp_path, GRID_SWEEP)
  root = str(tmp_path / 'runs')
  assert sweep_command([path, '--root', root, '--dry-run']) == 0
  d = f'{root}/lr_width'
  assert capsys.readouterr().out == textwrap.dedent(f'''\
      # sweep lr_width: 4 runs in {d}, config configs/quickstart.py:runlocal
      # every run: --config.logging.progress=false --config.train.steps=6
      new  lr=0.001,d_model=32  {d}/lr=0.001,d_model=32  --config.optimizer.lr=0.001 --config.model.d_model=32
      new  lr=0.001,d_model=64  {d}/lr=0.001,d_model=64  --config.optimizer.lr=0.001 --config.model.d_model=64
      new  lr=0.003,d_model=32  {d}/lr=0.003,d_model=32  --config.optimizer.lr=0.003 --config.model.d_model=32
      new  lr=0.003,d_model=64  {d}/lr=0.003,d_model=64  --config.optimizer.lr=0.003 --config.model.d_model=64
      ''')
  assert not os.path.exists(root)  # a dry run writes nothing


def test_emit_tpu_prints_one_launch_per_run(tmp_path, capsys, in_repo):
  path = _write_sweep(tmp_path, GRID_SWEEP)
  assert sweep_command([path, '--root', '/mnt/shared/runs', '--emit', 'tpu', '--',
                        '--name', 'my-slice', '--zone', 'us-central2-b']) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith('# sweep lr_width: 4 runs.')
  expected = [
      f'python tpu_setup/tpu.py launch --name my-slice --zone us-central2-b '
      f'--config configs/quickstart.py:runlocal --run-dir /mnt/shared/runs/lr_width/{name} '
      f'--config.logging.progress=false --config.train.steps=6 {flags}'
      for name, flags in [
          ('lr=0.001,d_model=32', '--config.optimizer.lr=0.001 --config.model.d_model=32'),
          ('lr=0.001,d_model=64', '--config.optimizer.lr=0.001 --config.model.d_model=64'),
          ('lr=0.003,d_model=32', '--config.optimizer.lr=0.003 --config.model.d_model=32'),
          ('lr=0.003,d_model=64', '--config.optimizer.lr=0.003 --config.model.d_model=64')]]
  assert lines[1:] == expected
  # tpu.py itself accepts each line (its --dry-run parse), with the run's directory
  import tpu  # noqa: E402  (tpu_setup/ is on the path)
  args, _ = tpu.commands_for(expected[1].split()[2:])
  assert args.run_dir == '/mnt/shared/runs/lr_width/lr=0.001,d_model=64'


def test_emit_slurm_writes_a_job_array_whose_tasks_run_each_run(tmp_path, capsys, in_repo):
  path = _write_sweep(tmp_path, GRID_SWEEP)
  root = str(tmp_path / 'runs')
  d = f'{root}/lr_width'
  assert sweep_command([path, '--root', root, '--emit', 'slurm', '--', '--nodes', '1',
                        '--gpus-per-node', '2']) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[1] == (f'python tpu_setup/slurm.py --job-name lr_width --nodes 1 --gpus-per-node 2 '
                    f'--config configs/quickstart.py:runlocal --run-dir {d} '
                    f'--array {d}/slurm_array.json')
  args, extra = slurm.build_parser().parse_known_args(out[1].split()[2:] + ['--workdir', '/w'])
  script = slurm.sbatch_script(args, extra)
  assert '#SBATCH --array=0-3\n' in script
  assert ("  2) RUN_DIR=" + f"{d}/lr=0.003,d_model=32; RUN=(--config.logging.progress=false "
          "--config.train.steps=6 --config.optimizer.lr=0.003 --config.model.d_model=32) ;;"
          ) in script.splitlines()
  # Run the script's case for task 2 with a fake srun that prints its arguments.
  fake = tmp_path / 'bin'
  fake.mkdir()
  (fake / 'srun').write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
  (fake / 'srun').chmod(stat.S_IRWXU)
  body = script.split('export JAX_PLATFORMS=cuda\n')[1]
  done = subprocess.run(['bash', '-c', 'set -euo pipefail\n' + body], capture_output=True,
                        text=True, env={'PATH': f'{fake}:/usr/bin:/bin',
                                        'SLURM_ARRAY_TASK_ID': '2'})
  assert done.returncode == 0, done.stderr
  assert done.stdout.splitlines() == [
      '--kill-on-bad-exit=1', '--label', 'lm-jax', 'train',
      '--config', 'configs/quickstart.py:runlocal',
      f'--config.logging.run_dir={d}/lr=0.003,d_model=32',
      '--config.logging.progress=false', '--config.train.steps=6',
      '--config.optimizer.lr=0.003', '--config.model.d_model=32']
  missing = subprocess.run(['bash', '-c', 'set -euo pipefail\n' + body], capture_output=True,
                           text=True, env={'PATH': f'{fake}:/usr/bin:/bin',
                                           'SLURM_ARRAY_TASK_ID': '4'})
  assert missing.returncode == 1 and 'no run for array task 4' in missing.stderr


@pytest.mark.parametrize('body, message', [
    ('''
     def get_sweep():
       return Sweep(name='s', config='configs/quickstart.py:runlocal',
                    runs=[{'optimizer.lr': 0.1}, {'optimizer.learning_rate': 0.1}])
     ''', "run 'learning_rate=0.1': unknown config key config.optimizer.learning_rate"),
    ('''
     def get_sweep():
       return Sweep(name='s', config='configs/quickstart.py:runlocal',
                    runs=[{'model.num_layers': 'two'}])
     ''', 'config.model.num_layers'),
    ('''
     def get_sweep():
       return Sweep(name='s', config='configs/no_such.py', runs=[{}])
     ''', "config file not found: 'configs/no_such.py'"),
    ('''
     def make():
       pass
     ''', 'has no get_sweep() function'),
], ids=['unknown_key', 'bad_type', 'missing_config', 'no_get_sweep'])
def test_bad_sweep_files_fail_before_anything_runs(tmp_path, in_repo, body, message):
  path = _write_sweep(tmp_path, body)
  with pytest.raises(ConfigError, match=message.replace('(', r'\(').replace(')', r'\)')):
    sweep_command([path, '--root', str(tmp_path / 'runs')])
  assert not os.path.exists(tmp_path / 'runs')
