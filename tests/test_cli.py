"""`lm-jax train` / `lm-jax eval` end to end, and user errors as one message + exit 2."""

import math
import os

import pytest

from lm_jax.metrics.writers import read_jsonl
from tests.run_helpers import QUICK, run_cli, tiny_overrides

STEPS = 30


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('cli') / 'run')
  flags = tiny_overrides(run_dir, STEPS, **{
      'train.eval_every': STEPS, 'checkpoint.every': 10, 'train.log_every': 5,
      'optimizer.lr': 3e-3})
  done = run_cli('train', '--config', QUICK, *flags)
  assert done.returncode == 0, done.stderr
  return run_dir, flags


def test_train_loss_falls_below_uniform_and_outputs_are_written(trained_run):
  run_dir, _ = trained_run
  rows = read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
  train_losses = [r['train/loss'] for r in rows if 'train/loss' in r]
  evals = [r for r in rows if 'eval/loss' in r]
  # A byte model predicting uniformly scores ln(256) nats; learning beats it.
  assert train_losses[0] > train_losses[-1]
  assert evals[-1]['eval/loss'] < math.log(256) - 1.0
  assert math.isclose(evals[-1]['eval/perplexity'],
                      math.exp(evals[-1]['eval/loss']), rel_tol=1e-6)
  assert sorted(os.listdir(os.path.join(run_dir, 'checkpoints'))) == ['10', '20', '30']
  assert any(f.startswith('events.out.tfevents')
             for f in os.listdir(os.path.join(run_dir, 'tensorboard')))
  assert os.path.exists(os.path.join(run_dir, 'tokenizer'))
  assert 'model' in open(os.path.join(run_dir, 'config.txt')).read()


def test_eval_command_reproduces_the_loops_final_evaluation(trained_run):
  run_dir, flags = trained_run
  done = run_cli('eval', '--config', QUICK, *flags)
  assert done.returncode == 0, done.stderr
  import json
  result = json.loads(done.stdout)
  final = [r for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
           if 'eval/loss' in r][-1]
  assert result['step'] == STEPS
  assert math.isclose(result['loss'], final['eval/loss'], rel_tol=1e-6)
  assert math.isclose(result['bits_per_byte'], final['eval/bits_per_byte'],
                      rel_tol=1e-6)


def test_eval_command_takes_the_test_split(trained_run):
  run_dir, flags = trained_run
  done = run_cli('eval', '--config', QUICK, *flags, '--split', 'test')
  assert done.returncode == 0, done.stderr
  import json
  result = json.loads(done.stdout)
  assert (result['split'], result['step']) == ('test', STEPS)
  assert result['loss'] < math.log(256) - 1.0  # the trained model, on held-out text
  bad = run_cli('eval', '--config', QUICK, *flags, '--split', 'train')
  assert bad.returncode == 2 and 'expected one of val, test' in bad.stderr


def test_resume_with_a_different_model_is_refused_and_keeps_checkpoints(trained_run):
  run_dir, flags = trained_run
  before = sorted(os.listdir(os.path.join(run_dir, 'checkpoints')))
  done = run_cli('train', '--config', QUICK, *flags, '--config.model.d_model=64',
                 '--config.train.steps=40')
  assert done.returncode == 2
  assert 'model.d_model: saved 32, now 64' in done.stderr
  assert 'Traceback' not in done.stderr
  assert sorted(os.listdir(os.path.join(run_dir, 'checkpoints'))) == before


@pytest.mark.parametrize('args, message', [
    (['--config.train.lr=1e-3'], 'Did you mean --config.optimizer.lr'),
    (['--config.mesh.data=3'], 'config.mesh'),
    (['--config.data.source=/no/such/corpus.txt'], '/no/such/corpus.txt'),
    (['--config.model.num_layers=two'], 'config.model.num_layers'),
], ids=['unknown_key', 'mesh_product', 'missing_source', 'bad_type'])
def test_user_errors_exit_2_with_one_message(tmp_path, args, message):
  flags = tiny_overrides(str(tmp_path / 'run'), 2)
  done = run_cli('train', '--config', QUICK, *flags, *args)
  assert done.returncode == 2, done.stderr
  assert message in done.stderr
  assert 'Traceback' not in done.stderr


def test_eval_without_checkpoint_is_a_clear_error(tmp_path):
  flags = tiny_overrides(str(tmp_path / 'run'), 2)
  done = run_cli('eval', '--config', QUICK, *flags)
  assert done.returncode == 2
  assert 'no checkpoint to evaluate' in done.stderr
