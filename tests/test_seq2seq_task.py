"""Seq2seq pairs from JSONL: the row layout of hand-written pairs, the split in file
order, and one clear error for a bad line."""

import json

import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data.special_tokens import special_ids
from lm_jax.data.tasks import TaskContext, get_task
from lm_jax.data.tokenizers import ByteTokenizer
from lm_jax.errors import ConfigError


def _cfg(path):
  c = base_config().data
  c.update(seq_len=6, target_len=4, seq2seq_path=str(path), val_fraction=0.25,
           test_fraction=0.25)
  return c


def test_rows_batch_and_splits(tmp_path):
  path = tmp_path / 'pairs.jsonl'
  pairs = [{'input': 'ab', 'target': 'c'}, {'input': 'abcdefgh', 'target': 'xyzwv'},
           {'input': 'v', 'target': 'w'}, {'input': 'q', 'target': 'r'}]
  path.write_text('\n'.join(json.dumps(p) for p in pairs) + '\n')
  task, cfg, tok = get_task('seq2seq'), _cfg(path), ByteTokenizer()
  specials = special_ids(tok, task.special_tokens(cfg))
  eos, pad = specials['eos'], specials['pad']
  train = task.examples(cfg, tok, specials, 'train')
  assert train.shape == (2, 10) and task.window_len(6, cfg) == 10
  assert [r.tolist() for r in task.examples(cfg, tok, specials, 'val')] == [
      [ord('v'), eos, -1, -1, -1, -1, ord('w'), eos, -1, -1]]
  ctx = TaskContext(data_cfg=cfg, specials=specials, text_vocab_size=256)
  batch = task.make_batch(train, np.arange(2), ctx)
  a, b = ord('a'), ord('b')
  np.testing.assert_array_equal(batch['encoder_inputs'],
                                [[a, b, eos, pad, pad, pad], [a, b, a + 2, a + 3, a + 4, eos]])
  np.testing.assert_array_equal(batch['encoder_valid'], [[1, 1, 1, 0, 0, 0], [1] * 6])
  x, y, z = ord('x'), ord('y'), ord('z')
  np.testing.assert_array_equal(batch['targets'], [[ord('c'), eos, pad, pad], [x, y, z, eos]])
  np.testing.assert_array_equal(batch['decoder_inputs'], [[pad, ord('c'), pad, pad],
                                                          [pad, x, y, z]])
  np.testing.assert_array_equal(batch['weights'], [[1, 1, 0, 0], [1, 1, 1, 1]])
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == task.batch_spec(2, 6, cfg)


def test_bad_line_names_file_and_line(tmp_path):
  path = tmp_path / 'bad.jsonl'
  path.write_text('{"input": "a", "target": "b"}\n{"input": "a"}\n')
  task, cfg, tok = get_task('seq2seq'), _cfg(path), ByteTokenizer()
  with pytest.raises(ConfigError, match=r"bad.jsonl', line 2.*'target'"):
    task.examples(cfg, tok, special_ids(tok, ('eos', 'pad')), 'train')


def test_build_data_reads_pairs_for_every_split(tmp_path):
  from lm_jax.data.pipeline import build_data
  path = tmp_path / 'pairs.jsonl'
  path.write_text(''.join(json.dumps({'input': f'question {i}', 'target': f'answer {i}'}) + '\n'
                          for i in range(40)))
  cfg = base_config().data
  cfg.update(task='seq2seq', source=str(path), seq_len=16, target_len=10,
             seq2seq_path=str(path), cache_dir=str(tmp_path / 'cache'), prefetch=0,
             val_fraction=0.1, test_fraction=0.1)
  data = build_data(cfg, global_batch_size=4, run_dir=str(tmp_path / 'run'),
                    task=get_task('seq2seq'))
  batch = next(data.train_iter)
  assert batch['encoder_inputs'].shape == (4, 16) and batch['targets'].shape == (4, 10)
  val = data.val_batches(1)[0]  # pairs 32..35: the file's order after the 32 train pairs
  text = ByteTokenizer().decode(val['targets'][0][val['weights'][0] == 1][:-1])
  assert text == 'answer 32'
  assert data.vocab_size == 256 + 2  # bytes, EOS, pad
