"""Token cache: hits skip tokenizing, memmap, invalidation, resumed runs keep their tokenizer."""

import os

import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data import fingerprint
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
  fp = fingerprint.corpus_fingerprint([str(tmp_path / 'corpus.txt')], 0)
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
  assert b.train_tokens + b.val_tokens + b.test_tokens == 30_000
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

  # A resumed run (its run dir has a checkpoint) refuses a changed corpus, or
  # keeps its tokenizer on it when allowed.
  make_corpus(tmp_path / 'corpus.txt', seed=1)
  with pytest.raises(ValueError, match='checkpoint.allow_new_data=True'):
    pipeline.build_data(cfg, global_batch_size=8, run_dir=run, resuming=True)
  resumed = pipeline.build_data(cfg, global_batch_size=8, run_dir=run, resuming=True,
                                allow_new_data=True)
  assert resumed.tokenizer.identity() == first.tokenizer.identity()
  cfg.tokenizer = 'byte'
  with pytest.raises(ValueError, match='resumed run must keep its tokenizer'):
    pipeline.build_data(cfg, global_batch_size=8, run_dir=run, resuming=True,
                        allow_new_data=True)


class _BigVocab(tokenizers.ByteTokenizer):
  vocab_size = 70_000

  def identity(self):
    return 'big'


def test_large_vocab_is_stored_as_uint32(tmp_path):
  path = tmp_path / 'c.txt'
  path.write_text('abc')
  fp = fingerprint.corpus_fingerprint([str(path)], 0)
  tokens_T = token_cache.cached_tokens(str(tmp_path), _BigVocab(), fp, lambda: 'abc')
  assert tokens_T.dtype == np.uint32 and list(tokens_T) == [97, 98, 99]
