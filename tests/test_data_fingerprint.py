"""Data identity: the token cache is keyed by file content; a stale run tokenizer is replaced."""

import hashlib
import os
import time

import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data import fingerprint
from lm_jax.data import pipeline
from lm_jax.data import tokenizers


def data_cfg(source, tokenizer='byte', **kw):
  cfg = base_config().data
  cfg.update(source=str(source), tokenizer=tokenizer, seq_len=16, max_bytes=0, prefetch=0,
             cache_dir=str(source.parent / 'cache'), **kw)
  return cfg


def random_words(num_words, seed, alphabet='abcdefghijklmnopqrstuvwxyz'):
  """Text of many distinct words: enough pairs for BPE to learn hundreds of merges."""
  rng = np.random.default_rng(seed)
  words = [''.join(rng.choice(list(alphabet), size=rng.integers(2, 9))) for _ in range(800)]
  return ' '.join(rng.choice(words, size=num_words))


def _fail(*args, **kwargs):
  raise AssertionError('must not be called')


# ---------------------------------------------------------------------------
# Task: the token cache is keyed by content, not by path, size and mtime.


def test_rewritten_file_with_restored_size_and_mtime_gets_new_tokens(tmp_path):
  path = tmp_path / 'corpus.txt'
  old, new = b'abcd' * 2000, b'wxyz' * 2000  # same size
  path.write_bytes(old)
  first = pipeline.build_data(data_cfg(path), global_batch_size=8, run_dir=str(tmp_path / 'a'))
  np.testing.assert_array_equal(np.load(first.tokens_path), np.frombuffer(old, np.uint8))
  st = os.stat(path)
  path.write_bytes(new)  # what cp -p, rsync -t or tar x do: new bytes, old size and mtime
  os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
  assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (st.st_size, st.st_mtime_ns)

  second = pipeline.build_data(data_cfg(path), global_batch_size=8, run_dir=str(tmp_path / 'b'))
  assert second.tokens_path != first.tokens_path
  np.testing.assert_array_equal(np.load(second.tokens_path), np.frombuffer(new, np.uint8))
  batch = next(second.train_iter)['inputs']
  assert set(np.unique(batch)) <= set(b'wxyz')


def test_file_digests_are_sha256_of_the_bytes_and_memoised_by_stat(tmp_path, monkeypatch):
  contents = [b'first file\n', os.urandom(3 << 20), b'']  # several 1 MiB chunks; empty
  paths = []
  for i, data in enumerate(contents):
    paths.append(str(tmp_path / f'f{i}'))
    with open(paths[-1], 'wb') as f:
      f.write(data)
  want = [hashlib.sha256(data).hexdigest() for data in contents]
  memo = str(tmp_path / 'memo')
  monkeypatch.setattr(fingerprint, '_RACY_NS', 0)  # trust digests of just-written files
  assert fingerprint.file_digests(paths, memo) == want

  hashed = []
  real_digest = fingerprint.file_digest
  monkeypatch.setattr(fingerprint, 'file_digest', lambda p: hashed.append(p) or real_digest(p))
  assert fingerprint.file_digests(paths, memo) == want
  assert hashed == []  # all three answered from the memo file
  time.sleep(0.05)  # past the filesystem's timestamp tick
  st = os.stat(paths[0])
  os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime; ctime changes
  assert fingerprint.file_digests(paths, memo) == want
  assert hashed == [paths[0]]


def test_a_digest_taken_right_after_a_write_is_checked_again(tmp_path, monkeypatch):
  """Two writes within one timestamp tick leave the stat unchanged; the memo must not trust it."""
  path = str(tmp_path / 'f')
  with open(path, 'wb') as f:
    f.write(b'x' * 100)
  memo = str(tmp_path / 'memo')
  fingerprint.file_digests([path], memo)
  hashed = []
  real_digest = fingerprint.file_digest
  monkeypatch.setattr(fingerprint, 'file_digest', lambda p: hashed.append(p) or real_digest(p))
  fingerprint.file_digests([path], memo)
  assert hashed == [path]


# ---------------------------------------------------------------------------
# Task: a tokenizer left in the run directory by a run that never saved a
# checkpoint is replaced when the data it was made from changed.


def test_stale_bpe_tokenizer_without_checkpoint_is_retrained(tmp_path):
  path = tmp_path / 'corpus.txt'
  path.write_text(random_words(20_000, seed=0))
  run = str(tmp_path / 'run')
  small = pipeline.build_data(data_cfg(path, 'bpe', bpe_vocab_size=300),
                              global_batch_size=8, run_dir=run)
  assert small.tokenizer.vocab_size == 300
  # The run died before its first checkpoint; relaunched with another vocab size.
  big = pipeline.build_data(data_cfg(path, 'bpe', bpe_vocab_size=1000),
                            global_batch_size=8, run_dir=run)
  assert big.tokenizer.vocab_size == 1000
  assert tokenizers.load_tokenizer(os.path.join(run, 'tokenizer')).vocab_size == 1000
  assert not [f for f in os.listdir(tmp_path) if f.startswith(('.tmp', '.stale'))]


def test_stale_char_tokenizer_without_checkpoint_follows_the_corrected_corpus(tmp_path):
  path = tmp_path / 'corpus.txt'
  path.write_text('abc ' * 2000)
  run = str(tmp_path / 'run')
  first = pipeline.build_data(data_cfg(path, 'char'), global_batch_size=8, run_dir=run)
  assert first.tokenizer.vocab_size == 4  # 'a', 'b', 'c', ' '
  path.write_text('abcdef ' * 2000)
  fixed = pipeline.build_data(data_cfg(path, 'char'), global_batch_size=8, run_dir=run)
  assert fixed.tokenizer.vocab_size == 7
  assert tokenizers.load_tokenizer(os.path.join(run, 'tokenizer')).vocab_size == 7

  # A tokenizer saved before origins were recorded: replaced too (no checkpoint).
  os.remove(os.path.join(run, 'tokenizer', 'trained_from.json'))
  path.write_text('ab ' * 2000)
  assert pipeline.build_data(data_cfg(path, 'char'), global_batch_size=8,
                             run_dir=run).tokenizer.vocab_size == 3


def _snapshot(directory):
  return {name: open(os.path.join(directory, name), 'rb').read()
          for name in sorted(os.listdir(directory))}


def test_with_a_checkpoint_a_mismatched_tokenizer_is_refused_and_kept(tmp_path):
  path = tmp_path / 'corpus.txt'
  path.write_text(random_words(20_000, seed=0))
  run = str(tmp_path / 'run')
  pipeline.build_data(data_cfg(path, 'bpe', bpe_vocab_size=300), global_batch_size=8,
                      run_dir=run)
  saved = _snapshot(os.path.join(run, 'tokenizer'))
  with pytest.raises(ValueError, match='bpe_vocab_size=300 but data.bpe_vocab_size=1000'):
    pipeline.build_data(data_cfg(path, 'bpe', bpe_vocab_size=1000), global_batch_size=8,
                        run_dir=run, resuming=True, allow_new_data=True)
  path.write_text(random_words(20_000, seed=1))
  with pytest.raises(ValueError, match=r'trained on other text.*checkpoint\.allow_new_data=True'):
    pipeline.build_data(data_cfg(path, 'bpe', bpe_vocab_size=300), global_batch_size=8,
                        run_dir=run, resuming=True)
  assert _snapshot(os.path.join(run, 'tokenizer')) == saved
