"""`lm-jax generate` on runs of the encdec (T5), rnn (LSTM) and cnn (gated CNN) families, as
initialized and (`-m slow`) trained by `lm-jax train`: the CLI's greedy text equals an argmax
decode by full forward passes (no cache, no window), token by token; a run of a family without
a `Decoding` is one error."""

import contextlib
import dataclasses
import io
import json
import os

import jax
import numpy as np
import pytest

from lm_jax import cli
from lm_jax.data import special_tokens
from lm_jax.data.tokenizers import ByteTokenizer
from lm_jax.generate.load import load_run
from tests.generate_run import make_run_dir
from tests.run_helpers import ROOT, run_cli, saved_params, tiny_overrides

STEPS, NEW = 2, 6
GREEDY = ['--config.sample.temperature=0', f'--config.sample.max_new_tokens={NEW}']
SMALLER = {'t5_tiny.py': {'encdec': {'num_decoder_layers': 1}}}
PROMPTS = ['def f', 'import os\n', 'x']  # ragged: the CLI left-pads, the reference does not


def lm_jax(*args):
  """(exit code, stdout, stderr) of `lm-jax ARGS`, in this process."""
  out, err = io.StringIO(), io.StringIO()
  code = 0
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      cli.main(list(args))
    except SystemExit as e:
      code = e.code
  return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope='module')
def run_of(tmp_path_factory):
  """run_of(config, trained) -> a run directory of configs/<config>:runlocal, trained STEPS
  steps by `lm-jax train` (a process of its own: one device, where this one simulates 8) or
  its initial state saved as checkpoint STEPS (seconds)."""
  runs = {}

  def make(config, trained):
    if (config, trained) not in runs:
      run_dir = str(tmp_path_factory.mktemp(config) / 'run')
      if trained:
        done = run_cli('train', '--config', os.path.join(ROOT, 'configs', config) + ':runlocal',
                       *tiny_overrides(run_dir, STEPS, **{
                           'train.eval_every': 0, 'checkpoint.every': STEPS,
                           'checkpoint.async_save': False, 'logging.tensorboard': False,
                           'optimizer.decay_steps': STEPS}))
        assert done.returncode == 0, done.stderr[-3000:]
      else:  # one layer a stack: T5's init compiles in seconds
        make_run_dir(run_dir, step=STEPS, config_file=f'{config}:runlocal', num_layers=1,
                     **SMALLER.get(config, {}))
      runs[config, trained] = run_dir
    return runs[config, trained]

  return make


def _model(run_dir):
  """(jitted batch -> logits, params read with plain Orbax, the run's task's special ids)."""
  run = load_run(run_dir)  # for the module only; the params come from the files
  params, _ = saved_params(run_dir, STEPS)
  roles = run.built.task.special_tokens(run.config.data)
  logits = jax.jit(lambda batch: run.built.fns.apply({'params': params}, batch)['logits'])
  return logits, special_tokens.special_ids(run.tokenizer, roles)


def _greedy(logits_of, start_BxL, prompt_lens, eos):
  """Argmax token by token, a full pass each step over fixed-size right-padded rows (the
  models are causal where it matters: padding after a position cannot change it); a row
  stops at <eos>. logits_of(rows [B, L], new tokens so far) -> [B, L, V]; start_BxL: rows
  holding the prompts, whose new tokens go at prompt_lens[b]."""
  rows, new = np.array(start_BxL), [[] for _ in prompt_lens]
  done = [False] * len(prompt_lens)
  for t in range(NEW):
    logits = np.asarray(logits_of(rows))
    for b, n in enumerate(prompt_lens):
      token = int(np.argmax(logits[b, n + t - 1]))
      if done[b] or token == eos:
        done[b] = True
        continue
      new[b].append(token)
      rows[b, n + t] = token
  return new


def _t5_greedy(run_dir, prompts):
  """The encoder on the right-padded prompts (the padding masked out), the decoder over
  <pad> (T5's start token: the encdec tasks' decoder_inputs begin with it) + the tokens."""
  logits, ids = _model(run_dir)
  enc = np.zeros((len(prompts), 16), np.int32)
  for b, p in enumerate(prompts):
    enc[b, :len(p)] = p
  valid = (enc != 0).astype(np.int32)  # no prompt here holds byte 0
  dec = np.full((len(prompts), NEW + 1), ids['pad'], np.int32)
  return _greedy(lambda rows: logits({'encoder_inputs': enc, 'encoder_valid': valid,
                                      'decoder_inputs': rows}),
                 dec, [1] * len(prompts), ids.get('eos'))


def _lm_greedy(run_dir, prompts):
  logits, ids = _model(run_dir)
  rows = np.zeros((len(prompts), 32), np.int32)
  for b, p in enumerate(prompts):
    rows[b, :len(p)] = p
  return _greedy(lambda r: logits({'inputs': r}), rows, [len(p) for p in prompts],
                 ids.get('eos'))


def _text(ids) -> str:
  """Bytes as UTF-8 (U+FFFD for invalid ones); an id past the bytes as its role's spelling."""
  names = {i: special_tokens.SPELLING[role] for role, i in
           special_tokens.special_ids(ByteTokenizer(), special_tokens.ROLES).items()}
  text, run = '', []
  for i in ids + [None]:
    if i is not None and i < 256:
      run.append(i)
      continue
    text += bytes(run).decode('utf-8', errors='replace') + names.get(i, '')
    run = []
  return text


def _slow(*args):  # a training process: ~15 s (lstm) and ~35 s (t5) of a loaded 2-core VM
  return pytest.param(*args, marks=pytest.mark.slow)


@pytest.mark.parametrize('config,reference,trained', [
    ('t5_tiny.py', _t5_greedy, False), ('lstm_tiny.py', _lm_greedy, False),
    ('gated_cnn_tiny.py', _lm_greedy, False),
    _slow('t5_tiny.py', _t5_greedy, True), _slow('lstm_tiny.py', _lm_greedy, True)])
def test_generate_equals_greedy_by_full_passes(config, reference, trained, run_of, tmp_path):
  run_dir = run_of(config, trained)
  tokens = reference(run_dir, [list(ByteTokenizer().encode(p)) for p in PROMPTS])
  expected = {p: _text(t) for p, t in zip(PROMPTS, tokens)}
  prompts = tmp_path / 'prompts.jsonl'
  prompts.write_text(''.join(json.dumps({'prompt': p}) + '\n' for p in PROMPTS))
  code, out, err = lm_jax('generate', '--run', run_dir, '--prompts-file', str(prompts), *GREEDY)
  assert code == 0, err
  rows = [json.loads(line) for line in out.splitlines()]
  assert [r['prompt'] for r in rows] == PROMPTS
  assert {r['prompt']: r['completion'] for r in rows} == expected
  assert [r['tokens'] for r in rows] == [len(t) for t in tokens]
  assert [r['finish'] for r in rows] == ['length' if len(t) == NEW else 'stop_token'
                                         for t in tokens]
  assert all(r['step'] == STEPS for r in rows)


@pytest.mark.parametrize('beams', ['1', '3'])
def test_a_run_of_a_family_without_decoding_is_one_error(beams, tmp_path, monkeypatch):
  from lm_jax.models.cnn import family as cnn_family  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(cnn_family, 'FAMILY', dataclasses.replace(cnn_family.FAMILY,
                                                                decoding=None))
  run_dir = str(tmp_path / 'run')
  make_run_dir(run_dir, config_file='gated_cnn_tiny.py:runlocal')
  code, out, err = lm_jax('generate', '--run', run_dir, '--prompt', 'def f', *GREEDY,
                          f'--config.sample.num_beams={beams}')
  assert code == 2 and out == ''
  assert err.startswith("error: config.model.family='cnn' cannot generate")
  assert "'decoder', 'encdec', 'rnn'" in err  # the families that can
  assert 'Traceback' not in err
