"""`lm-jax prepare` then `lm-jax train` on a JSONL corpus with document masks; bad data
exits 2 with one message."""

import json
import os

from tests.run_helpers import QUICK, run_cli, tiny_overrides


def _corpus(path, n=400):
  with open(path, 'w', encoding='utf-8') as f:
    for i in range(n):
      f.write(json.dumps({'body': f'document {i}: ' + 'the cat sat on the mat. ' * (i % 5 + 1)})
              + '\n')


def test_prepare_then_train_uses_the_preparation(tmp_path):
  _corpus(tmp_path / 'c.jsonl')
  flags = tiny_overrides(str(tmp_path / 'run'), 3, **{
      'data.source': str(tmp_path / 'c.jsonl'), 'data.text_field': 'body',
      'data.document_mask': True, 'data.drop_boundary_loss': True,
      'data.split_by': 'document', 'data.prepare_workers': 2, 'train.eval_every': 3})
  done = run_cli('prepare', '--config', QUICK, *flags)
  assert done.returncode == 0, done.stderr
  summary = json.loads(done.stdout)
  assert summary['specials'] == {'eos': 256} and summary['vocab_size'] == 257
  assert os.path.exists(os.path.join(summary['tokens'], 'index.json'))
  assert 'MB/s' in done.stderr
  stamps = {f: os.stat(os.path.join(summary['tokens'], f)).st_mtime_ns
            for f in os.listdir(summary['tokens'])}
  done = run_cli('train', '--config', QUICK, *flags)
  assert done.returncode == 0, done.stderr
  assert 'MB/s' not in done.stderr  # nothing tokenized again
  assert stamps == {f: os.stat(os.path.join(summary['tokens'], f)).st_mtime_ns
                    for f in os.listdir(summary['tokens'])}


def test_missing_field_exits_2(tmp_path):
  _corpus(tmp_path / 'c.jsonl')
  flags = tiny_overrides(str(tmp_path / 'run'), 2, **{'data.source': str(tmp_path / 'c.jsonl')})
  done = run_cli('prepare', '--config', QUICK, *flags)
  assert done.returncode == 2, done.stderr
  assert "no field data.text_field='text'; the record has ['body']" in done.stderr
  assert 'Traceback' not in done.stderr
