"""Tokenizers: byte (fixed 256 ids), char (corpus alphabet) and byte-level BPE
(pretrained ones from a local file: lm_jax/data/pretrained_tokenizers.py).

All three share one interface: `kind`, `vocab_size`, `encode(text) -> int32
ids`, `decode(ids) -> text`, `save(directory)`, plus `identity()` (a hash of
the vocabulary, used to key token caches) and `token_byte_lengths()` (UTF-8
bytes per id, used for bits per byte). `load_tokenizer(directory)` reads back
any of them.
"""

import hashlib
import json
import os
import re
from typing import Protocol, Sequence

import numpy as np

META_FILE = 'lm_jax_tokenizer.json'  # {"kind": ...} + what the kind needs
HF_FILE = 'tokenizer.json'           # bpe only: the Hugging Face tokenizer

# Where long texts may be cut for parallel BPE encoding without changing the
# result: just before the last whitespace of a run that precedes a visible
# character. The GPT-2 pre-tokenizer regex always starts a pre-token there
# (BPE never merges across pre-tokens), and the text before the cut splits the
# same way whether or not it is followed by more text. Only ASCII space and
# newline before ASCII printables, where Python's and Rust's regex agree.
_SAFE_CUT = re.compile(r'[ \n](?=[!-~])')
_ENCODE_CHUNK_CHARS = 1 << 16


class Tokenizer(Protocol):
  """What every tokenizer here provides."""
  kind: str
  vocab_size: int

  def encode(self, text: str) -> np.ndarray: ...
  def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...
  def save(self, directory: str) -> None: ...
  def identity(self) -> str: ...
  def token_byte_lengths(self) -> np.ndarray: ...


def _sha(s: str) -> str:
  return hashlib.sha256(s.encode('utf-8')).hexdigest()[:16]


def _write_json(path: str, obj) -> None:
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(obj, f, ensure_ascii=False)


class ByteTokenizer:
  """UTF-8 bytes as ids: no training, no unknowns, exact round trip."""

  kind = 'byte'
  vocab_size = 256

  def encode(self, text: str) -> np.ndarray:
    """Returns the UTF-8 bytes of `text` as int32 ids."""
    return np.frombuffer(text.encode('utf-8'), dtype=np.uint8).astype(np.int32)

  def decode(self, ids) -> str:
    """Returns the text of `ids` (invalid UTF-8 becomes U+FFFD)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() > 255):
      raise ValueError(f'byte tokenizer ids must be in [0, 256); got {ids.min()}..{ids.max()}')
    return ids.astype(np.uint8).tobytes().decode('utf-8', errors='replace')

  def save(self, directory: str) -> None:
    """Writes the tokenizer description into `directory`."""
    os.makedirs(directory, exist_ok=True)
    _write_json(os.path.join(directory, META_FILE), {'kind': 'byte'})

  def identity(self) -> str:
    """Returns a string that changes iff the id <-> text mapping changes."""
    return 'byte'

  def token_byte_lengths(self) -> np.ndarray:
    """Returns the UTF-8 byte count of each id, shape [vocab_size]."""
    return np.ones(256, dtype=np.int64)


class CharTokenizer:
  """One id per character of the corpus alphabet (sorted by code point)."""

  kind = 'char'

  def __init__(self, chars: str):
    if not chars:
      raise ValueError('char tokenizer needs a non-empty alphabet (is the corpus empty?)')
    self.chars = ''.join(sorted(set(chars)))
    self.vocab_size = len(self.chars)
    # Code points sorted ascending, so encode is one vectorized searchsorted.
    self._codepoints_V = np.array([ord(c) for c in self.chars], dtype=np.uint32)

  def encode(self, text: str) -> np.ndarray:
    """Returns the ids of the characters of `text`; unknown characters raise."""
    cps = np.frombuffer(text.encode('utf-32-le', errors='surrogatepass'), dtype='<u4')
    ids = np.searchsorted(self._codepoints_V, cps)
    ids_clipped = np.minimum(ids, self.vocab_size - 1)
    bad = np.flatnonzero(self._codepoints_V[ids_clipped] != cps)
    if bad.size:
      pos = int(bad[0])
      raise ValueError(
          f'char tokenizer: character {text[pos]!r} (U+{ord(text[pos]):04X}) at '
          f'position {pos} is not in its alphabet of {self.vocab_size} characters '
          '(the tokenizer only knows characters seen in its training corpus)')
    return ids.astype(np.int32)

  def decode(self, ids) -> str:
    """Returns the text of `ids`."""
    ids = np.asarray(ids, dtype=np.int64)
    return self._codepoints_V[ids].astype('<u4').tobytes().decode(
        'utf-32-le', errors='surrogatepass')

  def save(self, directory: str) -> None:
    """Writes the alphabet into `directory`."""
    os.makedirs(directory, exist_ok=True)
    _write_json(os.path.join(directory, META_FILE), {'kind': 'char', 'chars': self.chars})

  def identity(self) -> str:
    """Returns a string that changes iff the alphabet changes."""
    return f'char-{_sha(self.chars)}'

  def token_byte_lengths(self) -> np.ndarray:
    """Returns the UTF-8 byte count of each id, shape [vocab_size]."""
    return np.array([len(c.encode('utf-8', errors='surrogatepass')) for c in self.chars],
                    dtype=np.int64)


class BpeTokenizer:
  """Byte-level BPE (GPT-2 style) from the Hugging Face `tokenizers` library."""

  kind = 'bpe'

  def __init__(self, hf_tokenizer):
    self.hf = hf_tokenizer
    self.vocab_size = hf_tokenizer.get_vocab_size()

  @classmethod
  def train(cls, text: str, vocab_size: int) -> 'BpeTokenizer':
    """Trains a byte-level BPE with `vocab_size` ids on `text`."""
    from tokenizers import Tokenizer as HfTokenizer, decoders, models, pre_tokenizers, trainers
    if vocab_size < 256:
      raise ValueError(f'bpe_vocab_size must be >= 256 (the byte alphabet); got {vocab_size}')
    hf = HfTokenizer(models.BPE())
    # No prefix space: encode/decode must round-trip exactly.
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False, special_tokens=[],
        # All 256 bytes are always in the vocab, so no text is ever unknown.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(_chunks(text), trainer=trainer)
    return cls(hf)

  def encode(self, text: str) -> np.ndarray:
    """Returns the BPE ids of `text` (long texts are encoded in parallel pieces)."""
    pieces = _chunks(text)
    if len(pieces) <= 1:
      return np.asarray(self.hf.encode(text).ids, dtype=np.int32)
    encodings = self.hf.encode_batch_fast(pieces)
    return np.concatenate([np.asarray(e.ids, dtype=np.int32) for e in encodings])

  def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
    """Returns the BPE ids of each text (encoded in parallel by `tokenizers`)."""
    return [np.asarray(e.ids, dtype=np.int32) for e in self.hf.encode_batch_fast(texts)]

  def decode(self, ids) -> str:
    """Returns the text of `ids`."""
    return self.hf.decode([int(i) for i in np.asarray(ids).reshape(-1)])

  def save(self, directory: str) -> None:
    """Writes tokenizer.json (Hugging Face format) and the kind into `directory`."""
    os.makedirs(directory, exist_ok=True)
    self.hf.save(os.path.join(directory, HF_FILE))
    _write_json(os.path.join(directory, META_FILE), {'kind': 'bpe', 'file': HF_FILE})

  def identity(self) -> str:
    """Returns a string that changes iff the vocabulary or merges change."""
    return f'bpe-{_sha(self.hf.to_str())}'

  def token_byte_lengths(self) -> np.ndarray:
    """Returns the byte count of each id, shape [vocab_size]."""
    # Byte-level tokens are spelled with one printable character per byte.
    lengths_V = np.zeros(self.vocab_size, dtype=np.int64)
    for token, i in self.hf.get_vocab().items():
      lengths_V[i] = len(token)
    return lengths_V


def _chunks(text: str) -> list[str]:
  """Cuts `text` into ~64K-char pieces at points that do not change BPE ids."""
  pieces, start = [], 0
  while start < len(text):
    m = _SAFE_CUT.search(text, start + _ENCODE_CHUNK_CHARS)
    end = m.start() if m else len(text)
    pieces.append(text[start:end])
    start = end
  return pieces


def build_tokenizer(kind: str, text: str = '', bpe_vocab_size: int = 4096) -> Tokenizer:
  """Returns a tokenizer of `kind`, trained on `text` for 'char' and 'bpe'."""
  if kind == 'byte':
    return ByteTokenizer()
  if kind == 'char':
    return CharTokenizer(text)
  if kind == 'bpe':
    return BpeTokenizer.train(text, bpe_vocab_size)
  raise ValueError(f"data.tokenizer={kind!r}: expected one of 'byte', 'char', 'bpe'")


def load_tokenizer(directory: str) -> Tokenizer:
  """Loads a tokenizer written by `save(directory)`."""
  meta_path = os.path.join(directory, META_FILE)
  if not os.path.exists(meta_path):
    raise ValueError(f'no tokenizer in {directory!r} (missing {META_FILE})')
  with open(meta_path, encoding='utf-8') as f:
    meta = json.load(f)
  if meta['kind'] == 'byte':
    return ByteTokenizer()
  if meta['kind'] == 'char':
    return CharTokenizer(meta['chars'])
  if meta['kind'] == 'bpe':
    from tokenizers import Tokenizer as HfTokenizer
    return BpeTokenizer(HfTokenizer.from_file(os.path.join(directory, meta['file'])))
  if meta['kind'] == 'pretrained':
    from lm_jax.data import pretrained_tokenizers  # pylint: disable=g-import-not-at-top
    return pretrained_tokenizers.load(directory, meta)
  raise ValueError(f'unknown tokenizer kind {meta["kind"]!r} in {meta_path}')
