"""`lm-jax generate` and `lm-jax chat` on a saved run directory."""

import io
import json

import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.data.tokenizers import ByteTokenizer
from lm_jax.errors import ConfigError
from tests.generate_run import make_run_dir
from tests.run_helpers import run_cli

GREEDY = ['--config.sample.temperature=0', '--config.sample.max_new_tokens=6']


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('gen') / 'run')
  _, built, state = make_run_dir(run_dir)
  return run_dir, built, state


def _greedy_by_recomputing(built, params, prompt: str, n: int) -> str:
  """The argmax continuation, running the whole sequence through the model every token."""
  ids = list(ByteTokenizer().encode(prompt))
  for _ in range(n):
    logits = built.fns.apply({'params': params}, {'inputs': jnp.asarray([ids], jnp.int32)})
    ids.append(int(np.argmax(np.asarray(logits['logits'])[0, -1, :256])))
  return ByteTokenizer().decode(ids[len(ByteTokenizer().encode(prompt)):])


def test_generate_streams_the_greedy_continuation_and_writes_jsonl(run, tmp_path):
  run_dir, built, state = run
  expected = {p: _greedy_by_recomputing(built, state.params, p, 6) for p in ('def f', 'x = 1')}
  proc = run_cli('generate', '--run', run_dir, '--prompt', 'def f', *GREEDY)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == expected['def f'] + '\n'

  prompts = tmp_path / 'prompts.jsonl'
  prompts.write_text(''.join(json.dumps({'prompt': p}) + '\n' for p in expected))
  out = tmp_path / 'out.jsonl'
  proc = run_cli('generate', '--run', run_dir, '--prompts-file', str(prompts), '--output',
                 str(out), *GREEDY)
  assert proc.returncode == 0, proc.stderr
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert {r['prompt']: r['completion'] for r in rows} == expected
  assert all(r['finish'] == 'length' and r['step'] == 3 for r in rows)


def test_generate_user_errors_exit_2(run, tmp_path):
  run_dir, _, _ = run
  proc = run_cli('generate', '--run', run_dir, '--prompt', 'a', '--config.sample.top_p=0')
  assert proc.returncode == 2 and 'config.sample.top_p' in proc.stderr
  proc = run_cli('generate', '--run', str(tmp_path / 'nothing'), '--prompt', 'a')
  assert proc.returncode == 2 and 'no checkpoints' in proc.stderr


def test_chat_answers_each_line_and_compiles_once_per_bucket(run):
  import jax
  from lm_jax.generate.command import chat
  from lm_jax.generate.load import load_run
  run_dir, built, state = run
  loaded = load_run(run_dir, overrides=GREEDY)
  out = io.StringIO()
  questions = ['what is 1+1?', 'and 2+2?', 'x']
  gen = chat(loaded, io.StringIO(questions[0] + '\n'), out, template='none')
  compiles = []

  def count(event, secs, **kwargs):
    del secs, kwargs
    if 'backend_compile' in event:
      compiles.append(event)

  jax.monitoring.register_event_duration_secs_listener(count)
  try:
    chat(loaded, io.StringIO('\n'.join(questions[1:]) + '\n'), out, template='none', gen=gen)
  finally:
    jax.monitoring.unregister_event_duration_listener(count)
  assert compiles == []  # prompts of other lengths, same bucket: nothing compiled again
  answers = out.getvalue().splitlines()
  assert len(answers) == 3
  assert answers[0] == _greedy_by_recomputing(built, state.params, questions[0], 6).strip()


def test_chat_rejects_an_unknown_template(run):
  from lm_jax.generate.command import chat
  from lm_jax.generate.load import load_run
  with pytest.raises(ConfigError, match='--template'):
    chat(load_run(run[0], overrides=GREEDY), io.StringIO('hi\n'), io.StringIO(), 'nope')
