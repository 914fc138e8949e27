"""Preparation: sharded token files the same for any worker count, resumable after a kill,
whole-document splits, the token stream across shards, and build_data on every source kind."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data import documents, pipeline, prepare, tokenizers
from lm_jax.data.token_stream import TokenStream

EOS = 256
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus(n=300, seed=0):
  rng = np.random.default_rng(seed)
  words = ['alpha', 'beta', 'gamma', 'délta', '🐍', 'x']
  return [f'doc {i} ' + ' '.join(rng.choice(words, int(rng.integers(1, 40)))) for i in range(n)]


def write_jsonl(path, docs):
  with open(path, 'w', encoding='utf-8') as f:
    for d in docs:
      f.write(json.dumps({'text': d}) + '\n')
  return str(path)


def settings(split_by='tail', **kw):
  return prepare.Settings(text_field='text', utf8_errors='replace', bos_id=None, eos_id=EOS,
                          split_by=split_by, val_fraction=0.2, test_fraction=0.1,
                          dtype='uint16', **kw)


def run_prepare(path, out, workers=1, split_by='tail', chunk_bytes=2000):
  chunks = documents.plan_chunks([path], 'jsonl', chunk_bytes)
  return prepare.prepare(chunks, tokenizers.ByteTokenizer(), str(out), settings(split_by),
                         {'test': 1}, workers=workers, progress=False)


def shard_bytes(directory):
  return {os.path.basename(p): open(p, 'rb').read()
          for p in sorted(glob.glob(os.path.join(directory, 'shard-*')))}


def test_stream_is_documents_with_eos_and_the_same_for_any_worker_count(tmp_path):
  docs = corpus()
  path = write_jsonl(tmp_path / 'c.jsonl', docs)
  one = run_prepare(path, tmp_path / 'w1', workers=1)
  two = run_prepare(path, tmp_path / 'w2', workers=2)
  assert len(one.index['shards']) > 10
  expected = np.concatenate([np.r_[np.frombuffer(d.encode(), np.uint8).astype(np.int64), EOS] for d in docs])
  np.testing.assert_array_equal(np.asarray(one.stream('all')), expected)
  assert shard_bytes(one.directory) == shard_bytes(two.directory)
  assert one.index == two.index


def test_document_split_keeps_documents_whole(tmp_path):
  docs = corpus(2000)
  prep = run_prepare(write_jsonl(tmp_path / 'c.jsonl', docs), tmp_path / 'p',
                     split_by='document', chunk_bytes=20_000)
  parts = {}
  for split in ('train', 'val', 'test'):
    tokens = np.asarray(prep.stream(split))
    pieces = np.split(tokens, np.flatnonzero(tokens == EOS) + 1)[:-1]
    parts[split] = [bytes(p[:-1].astype(np.uint8)).decode() for p in pieces]
  assert sorted(sum(parts.values(), [])) == sorted(docs)  # every document once, whole
  for split, fraction in (('val', 0.2), ('test', 0.1)):
    assert abs(len(parts[split]) / len(docs) - fraction) < 0.03
  # The rule depends on the text only: a reordered corpus splits its documents the same.
  again = run_prepare(write_jsonl(tmp_path / 'r.jsonl', docs[::-1]), tmp_path / 'r',
                      split_by='document', chunk_bytes=20_000)
  tokens = np.asarray(again.stream('test'))
  back = [bytes(p[:-1].astype(np.uint8)).decode()
          for p in np.split(tokens, np.flatnonzero(tokens == EOS) + 1)[:-1]]
  assert sorted(back) == sorted(parts['test'])


_SLOW_RUN = '''
import sys, time
from lm_jax.data import prepare
sys.path.insert(0, {repo!r})
from tests.test_data_prepare import run_prepare
real = prepare.prepare_chunk
def slow(*a):
  out = real(*a)
  time.sleep(0.2)
  return out
prepare.prepare_chunk = slow
run_prepare({path!r}, {out!r})
'''


def test_killed_preparation_resumes_with_finished_shards_kept(tmp_path):
  path = write_jsonl(tmp_path / 'c.jsonl', corpus())
  out = tmp_path / 'killed'
  proc = subprocess.Popen([sys.executable, '-c', _SLOW_RUN.format(
      repo=REPO, path=path, out=str(out))], env={**os.environ, 'PYTHONPATH': REPO})
  deadline = time.time() + 120
  while len(glob.glob(str(out / 'shard-*.json'))) < 3 and time.time() < deadline:
    assert proc.poll() is None, 'preparation ended before it could be killed'
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (out / prepare.INDEX_FILE).exists()
  kept = {p: os.stat(p).st_mtime_ns for p in glob.glob(str(out / 'shard-*.json'))}
  resumed = run_prepare(path, out)
  assert all(os.stat(p).st_mtime_ns == m for p, m in kept.items())  # not redone
  fresh = run_prepare(path, tmp_path / 'fresh')
  assert shard_bytes(resumed.directory) == shard_bytes(fresh.directory)
  assert not glob.glob(str(out / '*.tmp-*'))


def test_token_stream_slices_across_shards(tmp_path):
  rng = np.random.default_rng(0)
  arrays = [rng.integers(0, 999, n).astype(np.uint16) for n in (5, 0, 17, 1, 9)]
  paths = []
  for i, a in enumerate(arrays):
    paths.append(str(tmp_path / f'{i}.bin'))
    a.tofile(paths[-1])
  stream = TokenStream(paths, [len(a) for a in arrays], 'uint16')
  ref = np.concatenate(arrays)
  assert len(stream) == len(ref)
  for a, b in [(0, 32), (3, 7), (4, 6), (5, 22), (22, 23), (10, 10), (30, 100)]:
    np.testing.assert_array_equal(stream[a:b], ref[a:b])
  view = stream.view(4, 25)
  np.testing.assert_array_equal(view[2:19], ref[6:23])
  assert len(view) == 21


def test_empty_source_and_invalid_utf8_reported(tmp_path, caplog):
  (tmp_path / 'empty.jsonl').write_text('{"text": ""}\n\n')
  with pytest.raises(documents.SourceError, match=r'no documents \(all 1 empty'):
    run_prepare(str(tmp_path / 'empty.jsonl'), tmp_path / 'e')
  (tmp_path / 'bad.jsonl').write_bytes(b'{"text": "a\xff"}\n{"text": "ok"}\n')
  prep = run_prepare(str(tmp_path / 'bad.jsonl'), tmp_path / 'b')
  assert prep.index['stats']['utf8_replaced'] == 1
  assert '1 documents had invalid UTF-8 replaced' in caplog.text


def _write_source(kind, tmp_path, docs):
  if kind == 'jsonl.zst':
    import zstandard
    path = tmp_path / 'c.jsonl.zst'
    path.write_bytes(zstandard.ZstdCompressor().compress(
        ''.join(json.dumps({'text': d}) + '\n' for d in docs).encode()))
    return str(path)
  if kind == 'parquet':
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({'text': docs}), str(tmp_path / 'c.parquet'), row_group_size=50)
    return str(tmp_path / 'c.parquet')
  import datasets
  datasets.Dataset.from_dict({'text': docs}).save_to_disk(str(tmp_path / 'hf'))
  return str(tmp_path / 'hf')


@pytest.mark.parametrize('kind', ['jsonl.zst', 'parquet', 'hf'])
def test_build_data_reads_every_source_kind(tmp_path, kind):
  docs = corpus(400)
  c = base_config().data
  c.update(source=_write_source(kind, tmp_path, docs), seq_len=16, split_by='document',
           cache_dir=str(tmp_path / 'cache'), chunk_mb=1)
  data = pipeline.build_data(c, global_batch_size=4, run_dir=str(tmp_path / 'run'))
  assert data.specials == {'eos': EOS} and data.vocab_size == EOS + 1
  with open(os.path.join(data.tokens_path, prepare.INDEX_FILE), encoding='utf-8') as f:
    prep = prepare.Prepared(data.tokens_path, json.load(f))
  tokens = np.concatenate([np.asarray(prep.stream(s)) for s in ('train', 'val', 'test')])
  pieces = np.split(tokens, np.flatnonzero(tokens == EOS) + 1)[:-1]
  assert sorted(data.tokenizer.decode(p[:-1]) for p in pieces) == sorted(docs)
  assert data.train_tokens + data.val_tokens + data.test_tokens == len(tokens)
  batch = next(data.train_iter)
  assert batch['inputs'].shape == (4, 16) and (batch['inputs'] <= EOS).all()


def test_other_processes_wait_for_process_0(tmp_path):
  import threading
  path = write_jsonl(tmp_path / 'c.jsonl', corpus())
  chunks = documents.plan_chunks([path], 'jsonl', 2000)
  out, got = str(tmp_path / 'p'), {}

  def follower():
    got['index'] = prepare.prepare(chunks, tokenizers.ByteTokenizer(), out, settings(), {},
                                   progress=False, is_primary=False).index
  thread = threading.Thread(target=follower)
  thread.start()
  time.sleep(0.3)
  assert thread.is_alive() and not os.path.exists(out)  # it wrote nothing
  lead = prepare.prepare(chunks, tokenizers.ByteTokenizer(), out, settings(), {}, progress=False)
  thread.join(timeout=30)
  assert got['index'] == lead.index


def test_two_runs_preparing_the_same_corpus_at_once(tmp_path):
  """Runs sharing a cache (a sweep) may prepare the same key together: both finish, and
  neither deletes the other's files in flight."""
  path = write_jsonl(tmp_path / 'c.jsonl', corpus())
  out = tmp_path / 'shared'
  procs = [subprocess.Popen([sys.executable, '-c', _SLOW_RUN.format(
      repo=REPO, path=path, out=str(out))], env={**os.environ, 'PYTHONPATH': REPO})
           for _ in range(2)]
  assert [p.wait(timeout=300) for p in procs] == [0, 0]
  fresh = run_prepare(path, tmp_path / 'fresh')
  assert shard_bytes(str(out)) == shard_bytes(fresh.directory)
  assert not glob.glob(str(out / '*.tmp-*'))
