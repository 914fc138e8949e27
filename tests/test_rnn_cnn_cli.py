"""The rnn and cnn configs through the CLI: `:runlocal` trains and its loss falls,
resume is exact, `lm-jax eval` reproduces the loop's evaluation, and `lm-jax plan`
says it does not model them (the CLI turns that ConfigError into exit 2)."""

import json
import math
import os

import pytest

from lm_jax.config import load_config
from lm_jax.errors import ConfigError
from lm_jax.metrics.writers import read_jsonl
from lm_jax.plan.command import plan_command
from tests.run_helpers import (ROOT, assert_same_tree, logged_train_losses, run_cli,
                               saved_params, tiny_overrides)

N = 3  # checkpoint every N steps; runs of 2N steps
COMMON = {'checkpoint.every': N, 'train.log_every': 1, 'train.eval_every': 2 * N,
          'optimizer.decay_steps': 2 * N}  # the schedule must not depend on train.steps


def _config(name):
  return os.path.join(ROOT, 'configs', f'{name}.py') + ':runlocal'


def _slow(name):
  return pytest.param(name, marks=pytest.mark.slow)


def _train(name, run_dir, steps):
  done = run_cli('train', '--config', _config(name), *tiny_overrides(run_dir, steps, **COMMON))
  assert done.returncode == 0, done.stderr
  return done


@pytest.mark.parametrize('name', ['gru_tiny', 'rnn_tiny', 'gated_cnn_tiny'])
def test_runlocal_trains_and_loss_falls(name, tmp_path):
  run_dir = str(tmp_path / 'run')
  _train(name, run_dir, 2 * N)
  losses = logged_train_losses(run_dir)
  assert losses[2 * N] < losses[1], losses


@pytest.mark.parametrize('name', [_slow('lstm_tiny'), _slow('gated_cnn_tiny')])
def test_resume_equals_a_straight_run_and_eval_matches_the_loop(name, tmp_path):
  ref_dir, run_dir = str(tmp_path / 'ref'), str(tmp_path / 'run')
  _train(name, ref_dir, 2 * N)
  ref_losses = logged_train_losses(ref_dir)
  assert ref_losses[2 * N] < ref_losses[1], ref_losses
  _train(name, run_dir, N)
  resumed = _train(name, run_dir, 2 * N)
  assert f'resumed from step {N}' in resumed.stderr
  ref_params, ref_opt = saved_params(ref_dir, 2 * N)
  params, opt = saved_params(run_dir, 2 * N)
  assert_same_tree(ref_params, params)
  assert_same_tree(ref_opt, opt)
  losses = logged_train_losses(run_dir)
  assert [losses[s] for s in range(1, 2 * N + 1)] == [ref_losses[s] for s in range(1, 2 * N + 1)]

  final = [r for r in read_jsonl(os.path.join(ref_dir, 'metrics.jsonl')) if 'eval/loss' in r][-1]
  evaluated = run_cli('eval', '--config', _config(name), *tiny_overrides(ref_dir, 2 * N, **COMMON))
  assert evaluated.returncode == 0, evaluated.stderr
  result = json.loads(evaluated.stdout)
  assert result['step'] == 2 * N
  assert math.isclose(result['bits_per_byte'], final['eval/bits_per_byte'], rel_tol=1e-6)


@pytest.mark.parametrize('name', ['lstm_tiny', 'gated_cnn_tiny'])
def test_plan_says_it_does_not_model_the_family(name):
  config = load_config(os.path.join(ROOT, 'configs', f'{name}.py'))
  with pytest.raises(ConfigError, match=f"family='{config.model.family}' is not modelled"):
    plan_command(config, ['--devices', '8', '--device', 'h100'])
