"""`lm-jax generate` on a T5 run whose head was edited to emit <eos>: a row ends at the run's
<eos> (finish 'stop_token', greedy and beams), a sentinel prints as its spelling, and the
text equals greedy decoding by full passes that stops at <eos>."""

import json
import os

import jax
import numpy as np
import pytest

from lm_jax.build import task_of
from lm_jax.checkpoint import Checkpointer
from lm_jax.data import special_tokens
from lm_jax.data.tokenizers import ByteTokenizer
from lm_jax.generate.beam_search import beam_search
from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig
from tests.generate_run import make_run_dir
from tests.test_generate_families_cli import (GREEDY, NEW, PROMPTS, SMALLER, STEPS, _t5_greedy,
                                              _text, lm_jax)

T5 = dict(step=STEPS, config_file='t5_tiny.py:runlocal', num_layers=1, **SMALLER['t5_tiny.py'])
EOS = special_tokens.special_ids(ByteTokenizer(), ('eos',))['eos']


@pytest.fixture(scope='module')
def edited(tmp_path_factory):
  """(run dir, config, built, params): a fresh T5 whose head column of <eos> is 1.5x that of
  the second greedy token after prompt 0 (so <eos> wins there, where that token's logit led)."""
  first = str(tmp_path_factory.mktemp('t5') / 'run')
  config, built, state = make_run_dir(first, **T5)
  second = _t5_greedy(first, [list(ByteTokenizer().encode(PROMPTS[0]))])[0][1]
  params = jax.tree.map(np.array, state.params)
  kernel = params['lm_head']['kernel']
  kernel[:, EOS] = 1.5 * kernel[:, second]
  params = jax.tree.map(lambda new, old: jax.device_put(new, old.sharding), params, state.params)
  # Saved as make_run_dir saves (one T5 init less).
  run_dir = str(tmp_path_factory.mktemp('t5_edited') / 'run')
  ByteTokenizer().save(os.path.join(run_dir, 'tokenizer'))
  ckpt = Checkpointer(run_dir, config.checkpoint)
  ckpt.save(state.replace(params=params), None, config, force=True)
  ckpt.close()
  return run_dir, config, built, params


def test_greedy_stops_at_eos_and_spells_sentinels(edited, tmp_path):
  run_dir = edited[0]
  tokens = _t5_greedy(run_dir, [list(ByteTokenizer().encode(p)) for p in PROMPTS])
  assert len(tokens[0]) == 1  # the edit made <eos> win at the second token
  assert any(t >= 256 for row in tokens for t in row)  # a sentinel or other special id
  prompts = tmp_path / 'prompts.jsonl'
  prompts.write_text(''.join(json.dumps({'prompt': p}) + '\n' for p in PROMPTS))
  code, out, err = lm_jax('generate', '--run', run_dir, '--prompts-file', str(prompts), *GREEDY)
  assert code == 0, err
  rows = [json.loads(line) for line in out.splitlines()]
  assert [r['completion'] for r in rows] == [_text(t) for t in tokens]
  assert any('<extra_id_' in r['completion'] for r in rows)
  assert rows[0]['finish'] == 'stop_token' and rows[0]['tokens'] == len(tokens[0])


def test_beams_stop_at_eos(edited):
  run_dir, config, built, params = edited
  decoding = built.family.decoding
  # As a run's loader does: T5's decoder starts from the run's <pad>.
  model_cfg = decoding.for_tokenizer(built.model_cfg, special_tokens.special_ids(
      ByteTokenizer(), task_of(config).special_tokens(config.data)))
  gen = Generator(decoding, model_cfg, params, SampleConfig())
  prompt = list(ByteTokenizer().encode(PROMPTS[0]))
  (tokens, _), = beam_search(gen, [prompt], NEW, num_beams=3, stop_tokens=[EOS])
  plain, = beam_search(gen, [prompt], NEW, num_beams=3)  # without the stop: runs to NEW
  assert len(tokens) < NEW and len(plain[0]) == NEW
  code, out, err = lm_jax('generate', '--run', run_dir, '--prompt', PROMPTS[0],
                          '--config.sample.num_beams=3', f'--config.sample.max_new_tokens={NEW}')
  assert code == 0, err
  assert out == _text(tokens) + '\n'
