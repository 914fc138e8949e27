"""Tokenizers: round trips, save/load, char errors, byte lengths, BPE chunking."""

import os

import numpy as np
import pytest

from lm_jax.data import tokenizers

CORPUS = (
    'def f(x):\n    return x + 1  # héllo wörld\n\n\n'
    'class A:\n    """Docstring — with ünïcödé and emoji 🐍."""\n\tpass\n'
    "  s = 'it''s'; t = \"a\\nb\"\r\n" * 20
)


@pytest.fixture(scope='module')
def bpe():
  return tokenizers.build_tokenizer('bpe', CORPUS * 5, bpe_vocab_size=300)


def test_byte_round_trip():
  tok = tokenizers.build_tokenizer('byte')
  ids = tok.encode(CORPUS)
  assert tok.kind == 'byte' and tok.vocab_size == 256
  assert ids.dtype == np.int32 and len(ids) == len(CORPUS.encode('utf-8'))
  assert tok.decode(ids) == CORPUS
  assert tok.decode([]) == ''


def test_char_round_trip_and_vocab():
  tok = tokenizers.build_tokenizer('char', CORPUS)
  assert tok.kind == 'char'
  assert tok.chars == ''.join(sorted(set(CORPUS)))
  assert tok.vocab_size == len(set(CORPUS))
  ids = tok.encode(CORPUS)
  assert ids.dtype == np.int32 and len(ids) == len(CORPUS)
  np.testing.assert_array_equal(ids, [tok.chars.index(c) for c in CORPUS])
  assert tok.decode(ids) == CORPUS
  assert tok.decode(tok.encode('return 🐍')) == 'return 🐍'


def test_char_unknown_character_names_it():
  tok = tokenizers.build_tokenizer('char', 'abc')
  with pytest.raises(ValueError, match=r"'z'.*position 2"):
    tok.encode('abz')
  with pytest.raises(ValueError, match='non-empty alphabet'):
    tokenizers.build_tokenizer('char', '')


def test_bpe_round_trip(bpe):
  assert bpe.kind == 'bpe' and bpe.vocab_size == 300
  ids = bpe.encode(CORPUS)
  assert ids.dtype == np.int32
  assert len(ids) < len(CORPUS.encode('utf-8'))  # merges were learned
  assert bpe.decode(ids) == CORPUS
  unseen = 'Ωmega ∑ 日本語 \x00\x7f unseen text'  # byte fallback: nothing is unknown
  assert bpe.decode(bpe.encode(unseen)) == unseen


@pytest.mark.parametrize('text_kind', ['corpus', 'random'])
def test_bpe_chunked_encode_equals_whole(bpe, monkeypatch, text_kind):
  if text_kind == 'corpus':
    text = CORPUS * 50
  else:  # whitespace runs of every kind next to letters, digits, symbols
    alphabet = list(' \n\r\t\x0b\x0c\x1c\x85\xa0\u2028\u3000abcXYZ019_\'"#.()sdtmlrve🐍é日')
    rng = np.random.default_rng(0)
    text = ''.join(rng.choice(alphabet, size=20_000))
  whole = np.asarray(bpe.hf.encode(text).ids, dtype=np.int32)
  monkeypatch.setattr(tokenizers, '_ENCODE_CHUNK_CHARS', 7)  # many cut points
  assert len(tokenizers._chunks(text)) > 100
  assert ''.join(tokenizers._chunks(text)) == text
  np.testing.assert_array_equal(bpe.encode(text), whole)


def test_bpe_training_is_deterministic(bpe):
  again = tokenizers.build_tokenizer('bpe', CORPUS * 5, bpe_vocab_size=300)
  assert again.identity() == bpe.identity()
  with pytest.raises(ValueError, match='>= 256'):
    tokenizers.build_tokenizer('bpe', CORPUS, bpe_vocab_size=100)


@pytest.mark.parametrize('kind', ['byte', 'char', 'bpe'])
def test_save_load(kind, bpe, tmp_path):
  tok = bpe if kind == 'bpe' else tokenizers.build_tokenizer(kind, CORPUS)
  tok.save(str(tmp_path / 'tok'))
  loaded = tokenizers.load_tokenizer(str(tmp_path / 'tok'))
  assert (loaded.kind, loaded.vocab_size, loaded.identity()) == (
      tok.kind, tok.vocab_size, tok.identity())
  np.testing.assert_array_equal(loaded.encode(CORPUS), tok.encode(CORPUS))
  assert loaded.decode(tok.encode(CORPUS)) == CORPUS
  if kind == 'bpe':  # a standard Hugging Face file, usable outside lm_jax
    assert os.path.exists(tmp_path / 'tok' / 'tokenizer.json')


@pytest.mark.parametrize('kind', ['byte', 'char', 'bpe'])
def test_token_byte_lengths(kind, bpe):
  tok = bpe if kind == 'bpe' else tokenizers.build_tokenizer(kind, CORPUS)
  lengths_V = tok.token_byte_lengths()
  assert lengths_V.shape == (tok.vocab_size,)
  ids = tok.encode(CORPUS)
  assert lengths_V[ids].sum() == len(CORPUS.encode('utf-8'))


def test_errors(tmp_path):
  with pytest.raises(ValueError, match="'byte', 'char', 'bpe'"):
    tokenizers.build_tokenizer('wordpiece', CORPUS)
  with pytest.raises(ValueError, match='no tokenizer'):
    tokenizers.load_tokenizer(str(tmp_path))
  with pytest.raises(ValueError, match=r'\[0, 256\)'):
    tokenizers.ByteTokenizer().decode([300])
