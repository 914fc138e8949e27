"""The T5 configs through the CLI: `train` on configs/t5_tiny.py:runlocal lowers the
span-corruption loss, `eval` reads the checkpoint back, `plan` says it does not model
the family; configs/t5_small.py has T5-small's parameter count."""

import json
import os

import jax
import numpy as np

from lm_jax.config import load_config
from lm_jax.models.registry import get_family, model_fns
from tests.run_helpers import ROOT, logged_train_losses, run_cli, tiny_overrides

T5_TINY = os.path.join(ROOT, 'configs', 't5_tiny.py') + ':runlocal'


def test_train_then_eval(tmp_path):
  run_dir = str(tmp_path / 'run')
  flags = tiny_overrides(run_dir, 12, **{'train.eval_every': 12, 'checkpoint.every': 12,
                                         'logging.tensorboard': False})
  done = run_cli('train', '--config', T5_TINY, *flags)
  assert done.returncode == 0, done.stderr[-3000:]
  losses = logged_train_losses(run_dir)
  assert np.mean([losses[11], losses[12]]) < np.mean([losses[1], losses[2]]) - 0.1, losses
  done = run_cli('eval', '--config', T5_TINY, *flags)
  assert done.returncode == 0, done.stderr[-3000:]
  metrics = json.loads(done.stdout[done.stdout.index('{'):])
  assert metrics['step'] == 12 and np.isfinite(metrics['bits_per_byte'])
  assert abs(np.log(metrics['perplexity']) - metrics['loss']) < 1e-6


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
