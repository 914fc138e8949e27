"""Tokenize a corpus once; memory-map the ids on every later run.

Cache entries live in one directory and are named by a hash of what they
depend on: the corpus content (lm_jax/data/fingerprint.py: file digests in
order, max_bytes) and, for tokens, the tokenizer's identity. Everything is
written to a temporary name and moved into place with os.replace, so a crashed
or concurrent writer never leaves a half-written entry behind.

  file-digests.json          the corpus files' content digests, memoised by stat
  tokenizer-<kind>-<hash>/   trained char/bpe tokenizer (byte needs none)
  tokens-<hash>.npy          uint16 (vocab <= 65536) or uint32 token ids
  tokens-<hash>.json         what the entry was built from

A saved tokenizer directory (here or <run_dir>/tokenizer) also holds
trained_from.json: its `tokenizer_origin`, so a stale copy can be recognised.
"""

import hashlib
import json
import os
import shutil
import tempfile
from typing import Callable

from absl import logging
import numpy as np

from lm_jax.data import fingerprint
from lm_jax.data import tokenizers

ORIGIN_FILE = 'trained_from.json'  # in a saved tokenizer directory: its tokenizer_origin


def tokenizer_origin(kind: str, bpe_vocab_size: int, corpus_fp: dict) -> dict:
  """Returns what a tokenizer of `kind` is made from: char the corpus, bpe also its vocab size."""
  origin = {'kind': kind}
  if kind != 'byte':  # the byte tokenizer is the same for every corpus
    origin['corpus'] = fingerprint.corpus_id(corpus_fp)
  if kind == 'bpe':
    origin['bpe_vocab_size'] = bpe_vocab_size
  return origin


def read_origin(directory: str) -> dict | None:
  """Returns the tokenizer_origin saved in `directory`, or None (saved before origins were)."""
  try:
    with open(os.path.join(directory, ORIGIN_FILE), encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


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


def _save_to_temp(tokenizer: tokenizers.Tokenizer, origin: dict, parent: str) -> str:
  """Saves `tokenizer` and its origin into a new temporary directory under `parent`."""
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix='.tmp-')
  try:
    tokenizer.save(tmp)
    with open(os.path.join(tmp, ORIGIN_FILE), 'w', encoding='utf-8') as f:
      json.dump(origin, f)
    os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return tmp


def save_tokenizer_atomic(tokenizer: tokenizers.Tokenizer, directory: str,
                          origin: dict) -> None:
  """Saves `tokenizer` and its origin into `directory` unless it exists (another writer won)."""
  tmp = _save_to_temp(tokenizer, origin, os.path.dirname(os.path.abspath(directory)))
  try:
    os.replace(tmp, directory)  # fails if `directory` already exists, non-empty
  except OSError:
    if not os.path.exists(os.path.join(directory, tokenizers.META_FILE)):
      raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def replace_tokenizer(tokenizer: tokenizers.Tokenizer, directory: str, origin: dict) -> None:
  """Replaces the tokenizer saved in `directory` by `tokenizer` (and its origin)."""
  parent = os.path.dirname(os.path.abspath(directory))
  tmp = _save_to_temp(tokenizer, origin, parent)
  stale = tempfile.mkdtemp(dir=parent, prefix='.stale-')
  try:
    # Two renames: a reader finds the old files, none, or the new ones, never a mix.
    if os.path.exists(directory):
      os.replace(directory, os.path.join(stale, 'tokenizer'))
    os.replace(tmp, directory)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)


def cached_tokenizer(cache_dir: str, kind: str, bpe_vocab_size: int, corpus_fp: dict,
                     read_text: Callable[[], str]) -> tokenizers.Tokenizer:
  """Returns the tokenizer of `kind` for the corpus, trained at most once per corpus."""
  if kind == 'byte':  # nothing to train, nothing to cache
    return tokenizers.build_tokenizer('byte')
  origin = tokenizer_origin(kind, bpe_vocab_size, corpus_fp)
  directory = os.path.join(cache_dir, f'tokenizer-{kind}-{_hash(origin)}')
  if os.path.exists(os.path.join(directory, tokenizers.META_FILE)):
    logging.info('data: tokenizer cache hit %s', directory)
    return tokenizers.load_tokenizer(directory)
  logging.info('data: training %s tokenizer -> %s', kind, directory)
  tokenizer = tokenizers.build_tokenizer(kind, read_text(), bpe_vocab_size)
  save_tokenizer_atomic(tokenizer, directory, origin)
  # Reload what is on disk: a concurrent writer may have won the rename.
  return tokenizers.load_tokenizer(directory)


def tokens_path(cache_dir: str, tokenizer: tokenizers.Tokenizer, corpus_fp: dict) -> str:
  """Returns the .npy path of the corpus tokenized by `tokenizer`."""
  key = _hash({'corpus': corpus_fp, 'tokenizer': tokenizer.identity()})
  return os.path.join(cache_dir, f'tokens-{key}.npy')


def cached_tokens(cache_dir: str, tokenizer: tokenizers.Tokenizer, corpus_fp: dict,
                  read_text: Callable[[], str]) -> np.memmap:
  """Returns the corpus token ids [T], memory-mapped; tokenizes only on a cache miss."""
  path = tokens_path(cache_dir, tokenizer, corpus_fp)
  if os.path.exists(path):
    logging.info('data: token cache hit %s', path)
  else:
    os.makedirs(cache_dir, exist_ok=True)
    logging.info('data: tokenizing corpus -> %s', path)
    text = read_text()
    # uint16 halves the file for all but huge vocabularies.
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32
    tokens_T = tokenizer.encode(text).astype(dtype)
    meta = {'corpus': corpus_fp, 'tokenizer': tokenizer.identity(),
            'num_tokens': len(tokens_T), 'num_bytes': len(text.encode('utf-8'))}
    _atomic_write(_meta_path(path), lambda f: json.dump(meta, f), mode='w')
    # The .npy appears last: its existence marks a complete entry.
    _atomic_write(path, lambda f: np.save(f, tokens_T))
  return np.load(path, mmap_mode='r')


def _meta_path(npy_path: str) -> str:
  return npy_path[:-len('.npy')] + '.json'
