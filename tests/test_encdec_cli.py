"""The T5 configs through the CLI: `train` on configs/t5_tiny.py:runlocal lowers the
span-corruption loss, a run stopped and resumed equals a straight one, `eval` reads
the checkpoint back, `plan` says it does not model the family; configs/t5_small.py
has T5-small's parameter count."""

import json
import os

import jax
import numpy as np
import pytest

from lm_jax.config import load_config
from lm_jax.models.registry import get_family, model_fns
from tests.run_helpers import (ROOT, assert_same_tree, logged_train_losses, run_cli,
                               saved_params, tiny_overrides)

T5_TINY = os.path.join(ROOT, 'configs', 't5_tiny.py') + ':runlocal'


def _flags(run_dir, steps):
  return tiny_overrides(run_dir, steps, **{
      'train.eval_every': 12, 'checkpoint.every': 6, 'logging.tensorboard': False,
      'optimizer.decay_steps': 12})


def _train(run_dir, steps):
  done = run_cli('train', '--config', T5_TINY, *_flags(run_dir, steps))
  assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope='module')
def straight_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('straight') / 'run')
  _train(run_dir, 12)
  return run_dir


def test_train_lowers_the_loss_then_eval(straight_run):
  losses = logged_train_losses(straight_run)
  assert np.mean([losses[11], losses[12]]) < np.mean([losses[1], losses[2]]) - 0.1, losses
  done = run_cli('eval', '--config', T5_TINY, *_flags(straight_run, 12))
  assert done.returncode == 0, done.stderr[-3000:]
  metrics = json.loads(done.stdout[done.stdout.index('{'):])
  assert metrics['step'] == 12 and np.isfinite(metrics['bits_per_byte'])
  assert abs(np.log(metrics['perplexity']) - metrics['loss']) < 1e-6


@pytest.mark.slow  # ~40 s of CPU (two more runs); the data side is checked in test_span_corruption
def test_resume_equals_straight_run(straight_run, tmp_path):
  run_dir = str(tmp_path / 'run')
  _train(run_dir, 6)
  _train(run_dir, 12)  # resumes from the checkpoint of step 6
  straight, resumed = logged_train_losses(straight_run), logged_train_losses(run_dir)
  assert [resumed[s] for s in range(1, 13)] == [straight[s] for s in range(1, 13)]
  assert_same_tree(saved_params(run_dir, 12), saved_params(straight_run, 12))


def test_plan_says_it_does_not_model_encdec():
  done = run_cli('plan', '--config', os.path.join(ROOT, 'configs', 't5_small.py'),
                 '--devices', '8', '--device', 'h100')
  assert done.returncode == 2
  assert "config.model.family='encdec' is not modelled" in done.stderr


def test_t5_small_has_t5_small_parameters():
  c = load_config(os.path.join(ROOT, 'configs', 't5_small.py'))
  family = get_family('encdec')
  # 32000 BPE ids + EOS, pad, bos, cls, sep, mask and 100 sentinels -> 32128 rows.
  module, cfg = family.build(c.model, 32000 + 6 + 100)
  batch = {'encoder_inputs': np.zeros((1, 8), np.int32),
           'encoder_valid': np.ones((1, 8), np.int32),
           'decoder_inputs': np.zeros((1, 4), np.int32)}
  shapes = jax.eval_shape(model_fns(family, module).init, jax.random.PRNGKey(0), batch)
  # Hugging Face's t5-small: 60,506,624 parameters.
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes['params'])) == 60_506_624
  assert family.num_params(cfg)['total'] == 60_506_624
