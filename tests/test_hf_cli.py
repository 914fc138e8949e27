"""`lm-jax convert` end to end: import a tiny HF model, eval / train it, export it back."""

import json
import os

import numpy as np
import pytest

import hf_models
from hf_models import transformers
from run_helpers import QUICK, run_cli

VOCAB = 301  # >= the test tokenizer's 260 ids


def _hf_dir(tmp_path, make):
  """A saved tiny HF model with a Hugging Face tokenizer.json of 260 byte-level BPE ids."""
  from lm_jax.data.tokenizers import BpeTokenizer
  hf = make()
  hf_dir = str(tmp_path / 'hf')
  hf.save_pretrained(hf_dir)
  text = open(os.__file__, encoding='utf-8').read()
  BpeTokenizer.train(text, 260).hf.save(os.path.join(hf_dir, 'tokenizer.json'))
  return hf, hf_dir


def _import(tmp_path, hf_dir):
  run = str(tmp_path / 'run')
  r = run_cli('convert', '--from-hf', hf_dir, '--to', run, '--config', QUICK,
              f'--config.data.cache_dir={tmp_path / "cache"}', '--config.logging.progress=False')
  assert r.returncode == 0, r.stderr[-3000:]
  summary = json.loads(r.stdout)
  assert summary['tokenizer'] and summary['family'] == 'decoder'
  return run, summary['config_file']


def _convert_eval_train_export(tmp_path, make):
  """convert -> eval -> train 2 more steps -> export step 0 -> from_pretrained equals the original."""
  hf, hf_dir = _hf_dir(tmp_path, make)
  run, config_file = _import(tmp_path, hf_dir)
  r = run_cli('eval', '--config', config_file)
  assert r.returncode == 0, r.stderr[-3000:]
  metrics = json.loads(r.stdout)
  assert metrics['step'] == 0 and np.isfinite(metrics['loss'])

  r = run_cli('train', '--config', config_file, '--config.train.steps=2',
              '--config.train.eval_every=0', '--config.checkpoint.async_save=False')
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from step 0' in r.stderr
  assert sorted(os.listdir(os.path.join(run, 'checkpoints'))) == ['0', '2']

  out = str(tmp_path / 'out')
  r = run_cli('convert', '--to-hf', out, '--run', run, '--step', '0')
  assert r.returncode == 0, r.stderr[-3000:]
  assert os.path.exists(os.path.join(out, 'tokenizer.json'))
  back = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  ids = np.random.default_rng(0).integers(0, VOCAB, (2, 9))
  np.testing.assert_array_equal(hf_models.hf_logits(back, ids), hf_models.hf_logits(hf, ids))


def test_llama_convert_eval_train_export(tmp_path):
  _convert_eval_train_export(tmp_path, lambda: hf_models.llama(vocab=VOCAB))


@pytest.mark.slow
def test_gpt2_convert_eval_train_export(tmp_path):
  _convert_eval_train_export(tmp_path, lambda: hf_models.gpt2(vocab=VOCAB))


@pytest.mark.parametrize('args,message', [
    (('--to-hf', 'x'), '--to-hf needs --run RUN_DIR'),
    (('--from-hf', 'nowhere', '--to', 'r'), '--from-hf nowhere: not a directory'),
    ((), 'give either --from-hf DIR --to RUN_DIR or --to-hf OUT_DIR --run RUN_DIR'),
])
def test_convert_user_errors_exit_2_with_one_message(capsys, args, message):
  from lm_jax import cli
  with pytest.raises(SystemExit) as e:
    cli.main(['convert', *args])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert message in err and 'Traceback' not in err
