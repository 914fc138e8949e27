"""Token cache: hits skip tokenizing, memmap, invalidation, resumed runs, bytes per token."""

import os

import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data import pipeline
from lm_jax.data import sources
from lm_jax.data import token_cache
from lm_jax.data import tokenizers

WORDS = ['def', 'return', 'self', 'x', '=', '+', '(', ')', ':', '\n', '    ', 'héllo', 'ß', '🐍']


def make_corpus(path, num_words=12_000, seed=0):
  rng = np.random.default_rng(seed)
  text = ' '.join(rng.choice(WORDS, size=num_words))
  path.write_text(text, encoding='utf-8')
  return text


def data_cfg(source, tokenizer='byte', **kw):
  cfg = base_config().data
  cfg.update(source=str(source), tokenizer=tokenizer, bpe_vocab_size=300, seq_len=16,
             max_bytes=0, prefetch=0, **kw)
  return cfg


def _fail(*args, **kwargs):
  raise AssertionError('must not be called on a cache hit')


def test_cache_hit_does_not_retokenize_and_is_memmapped(tmp_path, monkeypatch):
  make_corpus(tmp_path / 'corpus.txt')
  cfg = data_cfg(tmp_path / 'corpus.txt')
  first = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'runs' / 'a'))
  batch = next(first.train_iter)
  assert os.path.dirname(first.tokens_path) == str(tmp_path / 'runs' / '.cache' / 'tokens')

  monkeypatch.setattr(tokenizers.ByteTokenizer, 'encode', _fail)
  monkeypatch.setattr(sources, 'read_corpus', _fail)
  second = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'runs' / 'b'))
  np.testing.assert_array_equal(next(second.train_iter)['inputs'], batch['inputs'])
  assert second.tokens_path == first.tokens_path
  tokens_T = np.load(second.tokens_path, mmap_mode='r')
  assert isinstance(tokens_T, np.memmap) and tokens_T.dtype == np.uint16
  fp = token_cache.corpus_fingerprint([str(tmp_path / 'corpus.txt')], 0)
  cached = token_cache.cached_tokens(str(tmp_path / 'runs' / '.cache' / 'tokens'),
                                     tokenizers.ByteTokenizer(), fp, _fail)
  assert isinstance(cached, np.memmap)


def test_changed_corpus_or_max_bytes_retokenizes(tmp_path):
  make_corpus(tmp_path / 'corpus.txt')
  cache = str(tmp_path / 'cache')
  cfg = data_cfg(tmp_path / 'corpus.txt', cache_dir=cache)
  a = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'a'))
  cfg.max_bytes = 30_000
  b = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'b'))
  make_corpus(tmp_path / 'corpus.txt', num_words=13_000, seed=1)
  cfg.max_bytes = 0
  c = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'c'))
  assert len({a.tokens_path, b.tokens_path, c.tokens_path}) == 3
  assert b.train_tokens + b.val_tokens == 30_000
  assert sorted(f for f in os.listdir(cache) if f.endswith('.npy')) == sorted(
      os.path.basename(d.tokens_path) for d in (a, b, c))
  assert not [f for f in os.listdir(cache) if f.startswith('.tmp')]  # atomic writes


@pytest.mark.parametrize('kind', ['char', 'bpe'])
def test_trained_tokenizer_is_cached_and_kept_by_resumed_runs(tmp_path, monkeypatch, kind):
  make_corpus(tmp_path / 'corpus.txt')
  cfg = data_cfg(tmp_path / 'corpus.txt', tokenizer=kind)
  run = str(tmp_path / 'runs' / 'a')
  first = pipeline.build_data(cfg, global_batch_size=8, run_dir=run)
  assert tokenizers.load_tokenizer(os.path.join(run, 'tokenizer')).identity() == (
      first.tokenizer.identity())

  # Another run on the same corpus reuses the cached tokenizer: no training.
  monkeypatch.setattr(tokenizers, 'build_tokenizer', _fail)
  other = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'runs' / 'b'))
  assert other.tokenizer.identity() == first.tokenizer.identity()

  # A resumed run loads run_dir/tokenizer even with a different corpus.
  make_corpus(tmp_path / 'corpus.txt', seed=1)
  resumed = pipeline.build_data(cfg, global_batch_size=8, run_dir=run)
  assert resumed.tokenizer.identity() == first.tokenizer.identity()
  cfg.tokenizer = 'byte'
  with pytest.raises(ValueError, match='resumed run must keep its tokenizer'):
    pipeline.build_data(cfg, global_batch_size=8, run_dir=run)


class _BigVocab(tokenizers.ByteTokenizer):
  vocab_size = 70_000

  def identity(self):
    return 'big'


def test_large_vocab_is_stored_as_uint32(tmp_path):
  path = tmp_path / 'c.txt'
  path.write_text('abc')
  fp = token_cache.corpus_fingerprint([str(path)], 0)
  tokens_T = token_cache.cached_tokens(str(tmp_path), _BigVocab(), fp, lambda: 'abc')
  assert tokens_T.dtype == np.uint32 and list(tokens_T) == [97, 98, 99]


@pytest.mark.parametrize('kind', ['byte', 'char', 'bpe'])
def test_bytes_per_token(tmp_path, kind):
  text = make_corpus(tmp_path / 'corpus.txt')
  cfg = data_cfg(tmp_path / 'corpus.txt', tokenizer=kind)
  data = pipeline.build_data(cfg, global_batch_size=8, run_dir=str(tmp_path / 'run'))
  tokens_T = np.load(data.tokens_path, mmap_mode='r')
  n_train = data.train_tokens
  assert n_train == int(len(tokens_T) * 0.9) and data.val_tokens == len(tokens_T) - n_train
  train_bytes = data.train_bytes_per_token * data.train_tokens
  val_bytes = data.bytes_per_token * data.val_tokens
  assert round(train_bytes + val_bytes) == len(text.encode('utf-8'))
  if kind != 'bpe':  # char/byte splits decode to whole characters (bpe may cut one)
    val_text = data.tokenizer.decode(tokens_T[n_train:])
    assert data.bytes_per_token == pytest.approx(len(val_text.encode('utf-8')) / data.val_tokens)
  if kind == 'byte':
    assert data.bytes_per_token == 1.0
  if kind == 'char':
    assert data.bytes_per_token > 1.0  # é, ß and 🐍 are multi-byte
