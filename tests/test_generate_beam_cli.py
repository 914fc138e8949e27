"""`lm-jax generate --config.sample.num_beams=K`: the CLI prints what the beam_search API
finds on the same checkpoint; num_beams=1 is greedy; bad beam settings are one error."""

import json

import pytest

from lm_jax.data.tokenizers import ByteTokenizer
from lm_jax.generate.beam_search import beam_search
from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig
from tests.generate_run import make_run_dir
from tests.test_generate_cli import _greedy_by_recomputing
from tests.test_generate_families_cli import lm_jax

NEW = 6
BEAMS = ['--config.sample.num_beams=4', '--config.sample.length_penalty=0.5',
         f'--config.sample.max_new_tokens={NEW}']
PROMPTS = ['def f', 'import os\n', 'x = [1, 2']
TOK = ByteTokenizer()


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  """A quickstart:runlocal run at step 3; init_std 0.3 makes its next-token distributions
  peaked enough that 4 beams find other texts than greedy decoding."""
  run_dir = str(tmp_path_factory.mktemp('beam') / 'run')
  _, built, state = make_run_dir(run_dir, init_std=0.3)
  return run_dir, built, state


def _api(run, prompts, num_beams=4, length_penalty=0.5):
  """beam_search on the saved state's params, called directly."""
  _, built, state = run
  gen = Generator(built.family.decoding, built.model_cfg, state.params, SampleConfig())
  return beam_search(gen, [TOK.encode(p) for p in prompts], NEW, num_beams=num_beams,
                     length_penalty=length_penalty)


def test_one_prompt_prints_the_best_beam(run):
  (tokens, _), = _api(run, PROMPTS[:1])
  code, out, err = lm_jax('generate', '--run', run[0], '--prompt', PROMPTS[0], *BEAMS)
  assert code == 0, err
  assert out == TOK.decode(tokens) + '\n'
  assert out != _greedy_by_recomputing(run[1], run[2].params, PROMPTS[0], NEW) + '\n'


def test_a_prompts_file_writes_each_best_beam_and_its_score(run, tmp_path):
  prompts = tmp_path / 'prompts.txt'
  prompts.write_text(''.join(p.replace('\n', ' ') + '\n' for p in PROMPTS))
  sent = [p.replace('\n', ' ') for p in PROMPTS]
  out = tmp_path / 'out.jsonl'
  code, _, err = lm_jax('generate', '--run', run[0], '--prompts-file', str(prompts),
                        '--output', str(out), '--batch-size', '2', *BEAMS)
  assert code == 0, err
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  expected = _api(run, sent[:2]) + _api(run, sent[2:])  # the CLI's batches of 2
  assert [r['prompt'] for r in rows] == sent
  assert [r['completion'] for r in rows] == [TOK.decode(t) for t, _ in expected]
  assert [r['score'] for r in rows] == pytest.approx([s for _, s in expected], abs=1e-6)
  assert all(r['finish'] == 'length' and r['tokens'] == NEW and r['step'] == 3 for r in rows)


def test_one_beam_is_greedy(run):
  (tokens, _), = _api(run, PROMPTS[:1], num_beams=1, length_penalty=1.0)
  greedy = _greedy_by_recomputing(run[1], run[2].params, PROMPTS[0], NEW)
  assert TOK.decode(tokens) == greedy
  code, out, err = lm_jax('generate', '--run', run[0], '--prompt', PROMPTS[0],
                          '--config.sample.num_beams=1', '--config.sample.temperature=0',
                          f'--config.sample.max_new_tokens={NEW}')
  assert code == 0, err
  assert out == greedy + '\n'


@pytest.mark.parametrize('flags,message', [
    (['--config.sample.num_beams=0'], 'config.sample.num_beams=0: must be a positive int'),
    (['--config.sample.length_penalty=0.5'],
     'config.sample.length_penalty=0.5: only beam search reads it'),
    (['--config.sample.num_beams=2', '--config.sample.top_k=5'],
     'config.sample.top_k=5: beam search (config.sample.num_beams=2) does not sample'),
])
def test_bad_beam_settings_are_one_error(run, flags, message):
  code, out, err = lm_jax('generate', '--run', run[0], '--prompt', 'a', *flags)
  assert code == 2 and out == ''
  assert err.startswith('error: ' + message), err
  assert 'Traceback' not in err


@pytest.mark.slow  # a CLI load and compile; the stop rule itself: test_generate_beam_search.py
def test_beams_stop_at_a_stop_string_as_the_api_does(run):
  """The stop string is a character of the best beam's text without one: the CLI prints the
  API's best hypothesis with stop strings, its text cut before the first one."""
  (free, _), = _api(run, PROMPTS[:1])
  text = TOK.decode(free)
  stop = next(c for c in text[1:] if c.isprintable() and c not in '\'"\\')
  _, built, state = run
  gen = Generator(built.family.decoding, built.model_cfg, state.params, SampleConfig())
  (tokens, _), = beam_search(gen, [TOK.encode(PROMPTS[0])], NEW, num_beams=4,
                             length_penalty=0.5, stop_strings=[stop], decode=TOK.decode)
  want = TOK.decode(tokens)
  assert stop in want  # the hypothesis kept the tokens that completed the stop string
  code, out, err = lm_jax('generate', '--run', run[0], '--prompt', PROMPTS[0], *BEAMS,
                          f"--config.sample.stop=('{stop}',)")
  assert code == 0, err
  assert out == want[:want.find(stop)] + '\n'


def test_chat_refuses_beams(run):
  import io
  from lm_jax.errors import ConfigError
  from lm_jax.generate.command import chat
  from lm_jax.generate.load import load_run
  loaded = load_run(run[0], overrides=['--config.sample.num_beams=2'])
  with pytest.raises(ConfigError, match=r'config.sample.num_beams=2: lm-jax chat samples'):
    chat(loaded, io.StringIO('hi\n'), io.StringIO())
