"""Weights & Biases logging (offline, read back from wandb's files) and jax.profiler traces."""

import glob
import gzip
import json
import os
import subprocess

import pytest

from lm_jax.config.loader import apply_overrides, load_config
from lm_jax.config.validate import validate
from lm_jax.errors import ConfigError
from lm_jax.metrics.writers import MetricsWriter, read_jsonl
from tests import wandb_records
from tests.run_helpers import QUICK, ROOT, cli_env, lm_jax_cmd, tiny_overrides


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
  pytest.importorskip('wandb')
  wandb_dir = str(tmp_path / 'wandb_dir')
  os.makedirs(wandb_dir)
  for key, value in {'WANDB_MODE': 'offline', 'WANDB_DIR': wandb_dir,
                     'WANDB_SILENT': 'true'}.items():
    monkeypatch.setenv(key, value)
  return wandb_dir


def test_wandb_gets_the_metrics_and_config_and_a_resume_continues_its_run(
    tmp_path, offline_wandb):
  run_dir = str(tmp_path / 'run')
  kwargs = dict(is_primary=True, tensorboard=False, console=False,
                wandb_project='lm_jax_test', wandb_mode='offline')
  with MetricsWriter(run_dir, wandb_config={'model': {'d_model': 32}}, **kwargs) as w:
    w.write(1, {'loss': 2.5})
    w.write(2, {'loss': 2.25})
    w.write(2, {'loss': 2.0, 'bits_per_byte': 2.9}, prefix='eval')
  run_id = open(os.path.join(run_dir, 'wandb_run_id.txt')).read().strip()
  # Resumed from a checkpoint at step 1: step 2 is logged again, then step 3.
  with MetricsWriter(run_dir, purge_step=2, wandb_config={'model': {'d_model': 32}},
                     **kwargs) as w:
    w.write(2, {'loss': 2.2})
    w.write(3, {'loss': 1.75})
  runs = wandb_records.offline_runs(offline_wandb, count=2)
  assert len(runs) == 2 and all(name.endswith('-' + run_id) for name in runs)
  first, second = runs.values()
  assert wandb_records.run_ids(first) == wandb_records.run_ids(second) == [run_id]
  assert wandb_records.history(first) == [
      {'step': 1, 'train/loss': 2.5}, {'step': 2, 'train/loss': 2.25},
      {'step': 2, 'eval/loss': 2.0, 'eval/bits_per_byte': 2.9}]
  assert wandb_records.history(second) == [
      {'step': 2, 'train/loss': 2.2}, {'step': 3, 'train/loss': 1.75}]
  assert wandb_records.config(first) == {'model': {'d_model': 32},
                                         'run_dir': os.path.abspath(run_dir)}


def test_train_profiles_its_steps_and_logs_to_wandb(tmp_path, offline_wandb):
  run_dir = str(tmp_path / 'run')
  flags = tiny_overrides(run_dir, 4, **{
      'logging.profile_steps': '2,3', 'logging.wandb_project': 'lm_jax_test',
      'logging.wandb_mode': 'offline'})
  env = dict(cli_env(1), WANDB_MODE='offline', WANDB_DIR=offline_wandb, WANDB_SILENT='true')
  done = subprocess.run(lm_jax_cmd('train', '--config', QUICK, *flags), env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  (trace_dir,) = glob.glob(os.path.join(run_dir, 'tensorboard', 'plugins', 'profile', '*'))
  assert glob.glob(os.path.join(trace_dir, '*.xplane.pb'))  # TensorBoard's profile plugin
  with gzip.open(os.path.join(trace_dir, 'perfetto_trace.json.gz')) as f:
    trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  calls = sorted((e['ts'], e['ts'] + e['dur']) for e in events
                 if e.get('name') == 'PjitFunction(train_step)' and e.get('ph') == 'X')
  outermost = [c for c in calls if not any(o[0] < c[0] and c[1] <= o[1] for o in calls)]
  assert len(outermost) == 2  # steps 2 and 3: one jitted call each (Python and C++ spans nest)
  # Every train/loss that metrics.jsonl holds reached W&B at the same step.
  (records,) = wandb_records.offline_runs(offline_wandb, count=1).values()
  logged = {(r['step'], r['train/loss']) for r in wandb_records.history(records)
            if 'train/loss' in r}
  jsonl = {(r['step'], r['train/loss']) for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
           if 'train/loss' in r}
  assert logged == jsonl and len(jsonl) == 4
  cfg = wandb_records.config(records)
  assert cfg['run_dir'] == os.path.abspath(run_dir)
  assert cfg['model']['d_model'] == 32 and cfg['logging']['profile_steps'] == [2, 3]


@pytest.mark.parametrize('value', ['3,2', '0', '1,2,3'])
def test_bad_profile_steps_are_one_error_naming_the_key(value):
  config = apply_overrides(load_config(QUICK), [f'--config.logging.profile_steps={value}'])
  with pytest.raises(ConfigError, match=r'config\.logging\.profile_steps'):
    validate(config, device_count=1)


def test_wandb_without_the_package_is_one_error_naming_the_key(monkeypatch):
  import importlib.util  # pylint: disable=g-import-not-at-top
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, 'find_spec',
                      lambda name, *a: None if name == 'wandb' else real(name, *a))
  config = apply_overrides(load_config(QUICK), ['--config.logging.wandb_project=p'])
  with pytest.raises(ConfigError, match=r"config\.logging\.wandb_project='p'.*pip install"):
    validate(config, device_count=1)
