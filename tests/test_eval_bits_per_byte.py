"""Bits per byte divides by the UTF-8 bytes of the targets evaluated, counted here by decoding
them, not by the average bytes per token of the whole validation split.

The loss is not the subject here (test_cli.py checks a real evaluation end to end): the eval
step is replaced by one that charges 0.7 nats per weighted target, so no model compiles.
"""

import math
import types

import jax
import numpy as np
import pytest

from lm_jax import evaluate
from lm_jax.config import apply_overrides, load_config
from lm_jax.evaluate import make_evaluator, target_bytes
from lm_jax.run import build_run
from tests.run_helpers import QUICK

NATS = 0.7



def _corpus(path):
  """Random ASCII letters for 88% of the text, random accented (2-byte) letters after: with
  about one token per letter in both, the first validation windows (from 85%) hold about
  1 byte per token, the split as a whole far more."""
  rng = np.random.default_rng(0)
  head = ''.join(rng.choice(list('abcdefghijklmnopqrstuvwxyz '), size=44_000))
  tail = ''.join(rng.choice(list('àâäçéèêëîïôöùûü '), size=6_000))
  path.write_text(head + tail, encoding='utf-8')


def _run(tmp_path, kind):
  _corpus(tmp_path / 'corpus.txt')
  c = load_config(QUICK)
  apply_overrides(c, [
      f'--config.data.source={tmp_path / "corpus.txt"}', '--config.data.max_bytes=0',
      f'--config.data.tokenizer={kind}', '--config.data.bpe_vocab_size=320',
      '--config.train.global_batch_size=8', '--config.train.eval_batches=2',
      f'--config.logging.run_dir={tmp_path / "run"}',
      f'--config.data.cache_dir={tmp_path / "cache"}'])
  return build_run(c)


def _text_bytes(tokenizer, ids):
  """UTF-8 bytes of the text of `ids`: byte ids are bytes; others are decoded to text."""
  if tokenizer.kind == 'byte':  # a window may start inside a character: count the bytes
    return len(np.asarray(ids, np.uint8).tobytes())
  text = tokenizer.decode(ids)
  assert '\ufffd' not in text  # every token decodes to whole characters: the count is exact
  return len(text.encode('utf-8'))


def _decoded_bytes(tokenizer, batches):
  """(UTF-8 bytes, token count) of the weighted targets, row by row."""
  num_bytes = num_tokens = 0
  for batch in batches:
    for targets_L, weights_L in zip(batch['targets'], batch['weights']):
      num_bytes += _text_bytes(tokenizer, targets_L[weights_L > 0])
      num_tokens += int((weights_L > 0).sum())
  return num_bytes, num_tokens


def _fixed_loss_eval_step(*_):
  def step(params, batch):
    del params
    weight_sum = float(np.asarray(batch['weights']).sum())
    return {'loss': NATS * weight_sum}, weight_sum
  return step


@pytest.mark.parametrize('kind', ['byte', 'char', 'bpe'])
def test_bits_per_byte_counts_the_evaluated_targets(tmp_path, monkeypatch, kind):
  run = _run(tmp_path, kind)
  monkeypatch.setattr(evaluate, 'jit_eval_step', _fixed_loss_eval_step)
  metrics = make_evaluator(run)(types.SimpleNamespace(params=None))
  num_bytes, num_tokens = _decoded_bytes(run.data.tokenizer, run.data.val_batches(2))
  assert num_tokens == 2 * 8 * run.config.data.seq_len
  assert metrics['loss'] == pytest.approx(NATS)
  assert metrics['bits_per_byte'] == pytest.approx(
      NATS * num_tokens / math.log(2) / num_bytes, rel=1e-9)
  if kind != 'byte':  # the split's average bytes per token would be far off
    tokens_T = np.load(run.data.tokens_path)
    val_T = tokens_T[int(len(tokens_T) * 0.85):int(len(tokens_T) * 0.95)]
    split_bytes_per_token = len(run.data.tokenizer.decode(val_T).encode()) / len(val_T)
    assert abs(num_bytes / num_tokens / split_bytes_per_token - 1) > 0.1


def test_padding_targets_carry_no_bytes(tmp_path):
  run = _run(tmp_path, 'char')
  local = run.data.val_batches(1)[0]
  local['weights'][0, 5:] = 0.0  # trailing padding
  local['weights'][3, :] = 0.0   # a fully padded row
  lengths_V = run.data.tokenizer.token_byte_lengths()
  with jax.set_mesh(run.built.mesh):
    got = target_bytes([run.global_batch(local)], lengths_V, run.built.replicated)
  want = sum(len(c.encode('utf-8'))
             for row_t, row_w in zip(local['targets'], local['weights'])
             for c in run.data.tokenizer.decode(row_t[row_w > 0]))
  assert got == want
