"""Tokenize a corpus once; memory-map the ids on every later run.

Cache entries live in one directory and are named by a hash of what they
depend on: the corpus files (path, size, mtime), max_bytes and, for tokens,
the tokenizer's identity. Everything is written to a temporary name and moved
into place with os.replace, so a crashed or concurrent writer never leaves a
half-written entry behind.

  tokenizer-<kind>-<hash>/   trained char/bpe tokenizer (byte needs none)
  tokens-<hash>.npy          uint16 (vocab <= 65536) or uint32 token ids
  tokens-<hash>.json         what the entry was built from + byte counts per split
"""

import hashlib
import json
import os
import shutil
import tempfile
from typing import Callable

from absl import logging
import numpy as np

from lm_jax.data import sources
from lm_jax.data import tokenizers

_VERSION = 1  # bump when the cached format or the tokenization rule changes


def corpus_fingerprint(files: list[str], max_bytes: int) -> dict:
  """Returns what identifies a corpus without reading it: file stats and max_bytes."""
  stats = []
  for path in files:
    st = os.stat(path)
    stats.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
  return {'version': _VERSION, 'files': stats, 'max_bytes': max_bytes,
          'separator': sources.SEPARATOR.decode()}


def _hash(obj) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


def _atomic_write(path: str, write: Callable[[object], None], mode: str = 'wb') -> None:
  """Calls write(file) on a temp file next to `path`, then renames it to `path`."""
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.tmp-')
  try:
    with os.fdopen(fd, mode) as f:
      write(f)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; caches are shared
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save_tokenizer_atomic(tokenizer: tokenizers.Tokenizer, directory: str) -> None:
  """Saves `tokenizer` into `directory` unless it exists (a concurrent writer won)."""
  parent = os.path.dirname(os.path.abspath(directory))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix='.tmp-')
  try:
    tokenizer.save(tmp)
    os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
    os.replace(tmp, directory)  # fails if `directory` already exists, non-empty
  except OSError:
    if not os.path.exists(os.path.join(directory, tokenizers.META_FILE)):
      raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def cached_tokenizer(cache_dir: str, kind: str, bpe_vocab_size: int, fingerprint: dict,
                     read_text: Callable[[], str]) -> tokenizers.Tokenizer:
  """Returns the tokenizer of `kind` for the corpus, trained at most once per corpus."""
  if kind == 'byte':  # nothing to train, nothing to cache
    return tokenizers.build_tokenizer('byte')
  key = _hash({'corpus': fingerprint, 'kind': kind, 'bpe_vocab_size': bpe_vocab_size})
  directory = os.path.join(cache_dir, f'tokenizer-{kind}-{key}')
  if os.path.exists(os.path.join(directory, tokenizers.META_FILE)):
    logging.info('data: tokenizer cache hit %s', directory)
    return tokenizers.load_tokenizer(directory)
  logging.info('data: training %s tokenizer -> %s', kind, directory)
  tokenizer = tokenizers.build_tokenizer(kind, read_text(), bpe_vocab_size)
  save_tokenizer_atomic(tokenizer, directory)
  # Reload what is on disk: a concurrent writer may have won the rename.
  return tokenizers.load_tokenizer(directory)


def tokens_path(cache_dir: str, tokenizer: tokenizers.Tokenizer, fingerprint: dict) -> str:
  """Returns the .npy path of the corpus tokenized by `tokenizer`."""
  key = _hash({'corpus': fingerprint, 'tokenizer': tokenizer.identity()})
  return os.path.join(cache_dir, f'tokens-{key}.npy')


def cached_tokens(cache_dir: str, tokenizer: tokenizers.Tokenizer, fingerprint: dict,
                  read_text: Callable[[], str]) -> np.memmap:
  """Returns the corpus token ids [T], memory-mapped; tokenizes only on a cache miss."""
  path = tokens_path(cache_dir, tokenizer, fingerprint)
  if os.path.exists(path):
    logging.info('data: token cache hit %s', path)
  else:
    os.makedirs(cache_dir, exist_ok=True)
    logging.info('data: tokenizing corpus -> %s', path)
    text = read_text()
    # uint16 halves the file for all but huge vocabularies.
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32
    tokens_T = tokenizer.encode(text).astype(dtype)
    meta = {'corpus': fingerprint, 'tokenizer': tokenizer.identity(),
            'num_tokens': len(tokens_T), 'num_bytes': len(text.encode('utf-8')),
            'split_bytes': {}}
    _atomic_write(_meta_path(path), lambda f: json.dump(meta, f), mode='w')
    # The .npy appears last: its existence marks a complete entry.
    _atomic_write(path, lambda f: np.save(f, tokens_T))
  return np.load(path, mmap_mode='r')


def _meta_path(npy_path: str) -> str:
  return npy_path[:-len('.npy')] + '.json'


def split_bytes(npy_path: str, tokens_T: np.ndarray, tokenizer: tokenizers.Tokenizer,
                n_train: int) -> tuple[int, int]:
  """Returns UTF-8 bytes of (tokens[:n_train], tokens[n_train:]), cached per split point."""
  meta_path = _meta_path(npy_path)
  meta = {}
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
  cached = meta.get('split_bytes', {}).get(str(n_train))
  if cached is not None:
    return tuple(cached)
  lengths_V = tokenizer.token_byte_lengths()
  # Chunked, so a huge memory-mapped corpus is never copied whole into RAM.
  chunk = 1 << 24
  train = sum(int(lengths_V[tokens_T[i:min(i + chunk, n_train)]].sum())
              for i in range(0, n_train, chunk))
  val = sum(int(lengths_V[tokens_T[i:i + chunk]].sum())
            for i in range(n_train, len(tokens_T), chunk))
  meta.setdefault('split_bytes', {})[str(n_train)] = [train, val]
  # Best effort: a read-only cache still works, just recomputes next time.
  try:
    _atomic_write(meta_path, lambda f: json.dump(meta, f), mode='w')
  except OSError as e:
    logging.warning('data: could not record split bytes in %s: %s', meta_path, e)
  return train, val
