"""BERT end to end through the CLI: `lm-jax train configs/bert_tiny.py:runlocal` learns,
`lm-jax eval` reproduces its evaluation, and a resumed run equals the straight one."""

import json
import math
import os
import shutil

import pytest

from lm_jax.metrics.writers import read_jsonl
from tests.run_helpers import ROOT, assert_same_tree, run_cli, saved_params, tiny_overrides

BERT_TINY = os.path.join(ROOT, 'configs', 'bert_tiny.py') + ':runlocal'
N = 8  # checkpoint every N steps, train 2N


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('bert') / 'run')
  flags = tiny_overrides(run_dir, 2 * N, **{
      'train.eval_every': 2 * N, 'checkpoint.every': N, 'train.log_every': 1,
      'optimizer.lr': 3e-3})
  done = run_cli('train', '--config', BERT_TINY, *flags)
  assert done.returncode == 0, done.stderr
  return run_dir, flags


def test_masked_lm_loss_falls(trained_run):
  run_dir, _ = trained_run
  rows = read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
  losses = [r['train/loss'] for r in rows if 'train/loss' in r]
  final = [r for r in rows if 'eval/loss' in r][-1]
  # Uniform guessing over the 262 ids (256 bytes + 6 specials) scores ln(262) nats.
  assert losses[0] > math.log(262) - 0.1
  assert sum(losses[-3:]) / 3 < losses[0] - 0.3
  assert final['eval/loss'] < math.log(262) - 0.3
  assert 0.0 <= final['eval/accuracy'] <= 1.0 and 'eval/nsp_loss' in final


def test_eval_command_reproduces_the_final_evaluation(trained_run):
  run_dir, flags = trained_run
  done = run_cli('eval', '--config', BERT_TINY, *flags)
  assert done.returncode == 0, done.stderr
  result = json.loads(done.stdout)
  final = [r for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
           if 'eval/loss' in r][-1]
  assert result['step'] == 2 * N
  for key in ('loss', 'accuracy', 'nsp_loss', 'bits_per_byte'):
    assert math.isclose(result[key], final[f'eval/{key}'], rel_tol=1e-6), key


def test_resumed_run_equals_the_straight_run(trained_run, tmp_path):
  ref_dir, _ = trained_run
  run_dir = str(tmp_path / 'run')
  shutil.copytree(ref_dir, run_dir)
  shutil.rmtree(os.path.join(run_dir, 'checkpoints', str(2 * N)))  # as if stopped after N
  flags = tiny_overrides(run_dir, 2 * N, **{
      'train.eval_every': 2 * N, 'checkpoint.every': N, 'train.log_every': 1,
      'optimizer.lr': 3e-3, 'data.cache_dir': os.path.join(os.path.dirname(ref_dir), 'cache')})
  done = run_cli('train', '--config', BERT_TINY, *flags)
  assert done.returncode == 0, done.stderr
  assert f'resumed from step {N}' in done.stderr
  ref_params, ref_opt = saved_params(ref_dir, 2 * N)
  params, opt = saved_params(run_dir, 2 * N)
  assert_same_tree(ref_params, params)
  assert_same_tree(ref_opt, opt)
