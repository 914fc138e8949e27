"""Preparation: a document corpus -> sharded token files + an index, keyed by content.

  <cache_dir>/prepared-<key>/
    tokenizer/                 the tokenizer the workers load
    shard-00000-<split>.bin    raw token ids (uint16, or uint32 for vocabularies > 65536)
    shard-00000.json           that chunk's token counts and document stats (written last)
    index.json                 every shard in order + totals: the preparation is complete

One shard per chunk of the corpus (lm_jax/data/documents.py), each written by one
worker from its chunk alone, so the output is the same whatever the number of
workers (data.prepare_workers, a process pool) and a killed preparation resumes
where it stopped: a chunk whose shard-<i>.json exists is not read again. Memory
is bounded by the encode batch (~1 MB of text per worker), not the corpus. The
key hashes the source files' content digests, format, text field, UTF-8 rule,
chunk size, max_bytes, tokenizer identity, separator and split rule.

Splits: data.split_by='tail' keeps one stream ('all'), cut by token fractions at
load time (pipeline.split_bounds, nanoGPT's rule); 'document' assigns each
document whole to test, val or train by a fixed hash of its text:
u = blake2b-64(text) / 2**64; test if u < test_fraction, val if u < test + val.
"""

import concurrent.futures as futures
import dataclasses
import glob
import hashlib
import json
import multiprocessing
import os
import shutil
import socket
import sys
import time
from typing import Any

from absl import logging
import numpy as np

from lm_jax.data import documents
from lm_jax.data import tokenizers
from lm_jax.data.token_stream import TokenStream

VERSION = 1
INDEX_FILE = 'index.json'
SPLIT_RULE = 'blake2b-64(utf8 text)/2**64: < test -> test, < test+val -> val, else train'
_BATCH_CHARS = 1 << 20   # text per encode batch (bounds a worker's memory)
_TOKENIZER_CACHE: dict[str, Any] = {}


def _writer_alive(pid: str) -> bool:
  """Whether the writer process `pid` (from a partial file's name) may still be writing."""
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (ValueError, PermissionError):
    return True  # not a pid we can check: leave its files alone
  return True


def split_names(split_by: str) -> tuple[str, ...]:
  return ('all',) if split_by == 'tail' else ('train', 'val', 'test')


def document_split(text: str, val_fraction: float, test_fraction: float) -> str:
  """The split of a whole document under the hash rule (SPLIT_RULE)."""
  digest = hashlib.blake2b(text.encode('utf-8', errors='surrogatepass'), digest_size=8).digest()
  u = int.from_bytes(digest, 'big') / 2.0**64
  return 'test' if u < test_fraction else 'val' if u < test_fraction + val_fraction else 'train'


@dataclasses.dataclass(frozen=True)
class Settings:
  """What a worker needs besides its chunk (picklable)."""
  text_field: str
  utf8_errors: str
  bos_id: int | None
  eos_id: int | None
  split_by: str
  val_fraction: float
  test_fraction: float
  dtype: str
  source: str = ''   # for messages only


def _tokenizer(directory: str):
  if directory not in _TOKENIZER_CACHE:
    _TOKENIZER_CACHE[directory] = tokenizers.load_tokenizer(directory)
  return _TOKENIZER_CACHE[directory]


def _encode(tokenizer, texts: list[str]) -> list[np.ndarray]:
  batch = getattr(tokenizer, 'encode_batch', None)
  return batch(texts) if batch is not None else [tokenizer.encode(t) for t in texts]


def _tmp_suffix() -> str:
  """'.tmp-<host>-<pid>': whose temporary file it is (runs may share a cache)."""
  return f'.tmp-{socket.gethostname()}-{os.getpid()}'


def _remove_dead_temporaries(out_dir: str) -> None:
  """Deletes the partial files of killed writers on this host (live writers keep theirs)."""
  prefix = f'.tmp-{socket.gethostname()}-'
  for path in glob.glob(os.path.join(out_dir, '*' + prefix + '*')):
    pid = path.rsplit(prefix, 1)[1]
    if _writer_alive(pid):
      continue  # another run preparing the same corpus, or not ours to judge
    if os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
    else:
      os.remove(path)


def _atomic_json(path: str, obj) -> None:
  tmp = path + _tmp_suffix()
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(obj, f, sort_keys=True)
  os.replace(tmp, path)


def prepare_chunk(index: int, chunk: documents.Chunk, out_dir: str, tokenizer_dir: str,
                  s: Settings) -> dict:
  """Tokenizes one chunk into its shard files; returns (and writes) its shard meta."""
  meta_path = os.path.join(out_dir, f'shard-{index:05d}.json')
  if os.path.exists(meta_path):  # finished before a kill: keep it
    with open(meta_path, encoding='utf-8') as f:
      return json.load(f)
  tokenizer = _tokenizer(tokenizer_dir)
  names = split_names(s.split_by)
  paths = {n: os.path.join(out_dir, f'shard-{index:05d}-{n}.bin') for n in names}
  suffix = _tmp_suffix()
  files = {n: open(p + suffix, 'wb') for n, p in paths.items()}
  counts = dict.fromkeys(names, 0)
  stats = documents.ChunkStats()
  dtype = np.dtype(s.dtype)
  bos = np.array([s.bos_id] if s.bos_id is not None else [], dtype)
  eos = np.array([s.eos_id] if s.eos_id is not None else [], dtype)

  def flush(texts):
    if not texts:
      return
    parts = {n: [] for n in names}
    for text, ids in zip(texts, _encode(tokenizer, texts)):
      split = 'all' if s.split_by == 'tail' else document_split(
          text, s.val_fraction, s.test_fraction)
      parts[split] += [bos, ids.astype(dtype), eos]
    for n, arrays in parts.items():
      if arrays:
        out = np.concatenate(arrays)
        out.tofile(files[n])
        counts[n] += len(out)

  try:
    texts, chars = [], 0
    for doc in documents.read_chunk(chunk, s.text_field, s.utf8_errors, stats):
      texts.append(doc)
      chars += len(doc)
      if chars >= _BATCH_CHARS:
        flush(texts)
        texts, chars = [], 0
    flush(texts)
  finally:
    for f in files.values():
      f.close()
  for n, p in paths.items():
    os.replace(p + suffix, p)
  meta = {'index': index, 'input_bytes': chunk.size, 'tokens': counts,
          'stats': dataclasses.asdict(stats)}
  _atomic_json(meta_path, meta)  # last: the shard is complete
  return meta


def _worker(args):
  return prepare_chunk(*args)


class Progress:
  """MB/s and ETA of the input bytes done, on stderr (a line every few seconds off a tty)."""

  def __init__(self, total_bytes: int, total_chunks: int, enabled: bool):
    self.total, self.chunks, self.enabled = total_bytes, total_chunks, enabled
    self.done_bytes = self.new_bytes = self.done_chunks = 0
    self.start = self.last = time.monotonic()
    self.tty = sys.stderr.isatty()

  def update(self, nbytes: int, fresh: bool) -> None:
    self.done_bytes += nbytes
    self.new_bytes += nbytes if fresh else 0
    self.done_chunks += 1
    now = time.monotonic()
    if not self.enabled or (now - self.last < (0.2 if self.tty else 5.0)
                            and self.done_chunks < self.chunks):
      return
    self.last = now
    rate = self.new_bytes / max(now - self.start, 1e-9)
    eta = (self.total - self.done_bytes) / rate if rate > 0 else float('inf')
    line = (f'prepare: {self.done_bytes / 1e6:,.1f}/{self.total / 1e6:,.1f} MB, '
            f'{self.done_chunks}/{self.chunks} shards, {rate / 1e6:.1f} MB/s, ETA {eta:.0f}s')
    print(('\r' + line) if self.tty else line, end='' if self.tty else '\n', file=sys.stderr,
          flush=True)
    if self.tty and self.done_chunks == self.chunks:
      print(file=sys.stderr)


@dataclasses.dataclass
class Prepared:
  """A complete preparation: its directory and index."""
  directory: str
  index: dict

  def stream(self, split: str) -> TokenStream:
    """The tokens of `split` ('all' for split_by=tail) across all shards, memory-mapped."""
    shards = self.index['shards']
    return TokenStream([os.path.join(self.directory, f'shard-{m["index"]:05d}-{split}.bin')
                        for m in shards], [m['tokens'][split] for m in shards],
                       self.index['dtype'])


def preparation_dir(cache_dir: str, key_obj: dict) -> str:
  key = hashlib.sha256(json.dumps(key_obj, sort_keys=True).encode()).hexdigest()[:20]
  return os.path.join(cache_dir, f'prepared-{key}')


def _wait_for(index_path: str) -> None:
  """Other processes of a multi-process run wait for process 0's preparation."""
  start = last = time.monotonic()
  while not os.path.exists(index_path):
    if time.monotonic() - last > 60:
      logging.info('data: waiting %.0fs for process 0 to prepare %s',
                   time.monotonic() - start, os.path.dirname(index_path))
      last = time.monotonic()
    time.sleep(1.0)


def prepare(chunks: list[documents.Chunk], tokenizer, out_dir: str, settings: Settings,
            key_obj: dict, *, workers: int = 1, progress: bool = True,
            is_primary: bool = True) -> Prepared:
  """Tokenizes `chunks` into `out_dir` (resuming a partial run); returns the preparation.
  Only the primary process writes; the others wait for its index."""
  index_path = os.path.join(out_dir, INDEX_FILE)
  if not is_primary:
    _wait_for(index_path)
  if os.path.exists(index_path):
    with open(index_path, encoding='utf-8') as f:
      logging.info('data: prepared corpus found in %s', out_dir)
      return Prepared(out_dir, json.load(f))
  os.makedirs(out_dir, exist_ok=True)
  _remove_dead_temporaries(out_dir)
  tok_dir = os.path.join(out_dir, 'tokenizer')
  if not os.path.exists(os.path.join(tok_dir, tokenizers.META_FILE)):
    tmp = tok_dir + _tmp_suffix()
    tokenizer.save(tmp)
    try:
      os.replace(tmp, tok_dir)
    except OSError:  # another run sharing the cache saved it first
      shutil.rmtree(tmp, ignore_errors=True)
  done = {i for i in range(len(chunks))
          if os.path.exists(os.path.join(out_dir, f'shard-{i:05d}.json'))}
  logging.info('data: preparing %d chunks (%d done before) with %d worker(s) -> %s',
               len(chunks), len(done), workers, out_dir)
  bar = Progress(sum(c.size for c in chunks), len(chunks), progress)
  jobs = [(i, c, out_dir, tok_dir, settings) for i, c in enumerate(chunks)]
  metas = [None] * len(chunks)
  if workers <= 1:
    for job in jobs:
      metas[job[0]] = prepare_chunk(*job)
      bar.update(job[1].size, job[0] not in done)
  else:
    # spawn, not fork: the parent may hold JAX's threads.
    ctx = multiprocessing.get_context('spawn')
    with futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
      running = {pool.submit(_worker, job): job for job in jobs}
      for fut in futures.as_completed(running):
        i, chunk = running[fut][:2]
        metas[i] = fut.result()
        bar.update(chunk.size, i not in done)
  index = _index(metas, settings, key_obj, tokenizer)
  _atomic_json(index_path, index)
  return Prepared(out_dir, index)


def _index(metas: list[dict], settings: Settings, key_obj: dict, tokenizer) -> dict:
  totals = {n: sum(m['tokens'][n] for m in metas) for n in split_names(settings.split_by)}
  stats = documents.ChunkStats()
  for m in metas:
    stats.add(documents.ChunkStats(**m['stats']))
  if stats.documents == 0:
    raise documents.SourceError(
        f'data.source={settings.source!r}: no documents (all {stats.empty_skipped} '
        f'empty, {stats.utf8_skipped} skipped for invalid UTF-8); an empty source cannot be '
        'trained on')
  if stats.utf8_replaced or stats.utf8_skipped or stats.empty_skipped:
    logging.warning('data: %d documents had invalid UTF-8 replaced by U+FFFD, %d were skipped '
                    'for invalid UTF-8 (data.utf8_errors=%s), %d empty ones were dropped',
                    stats.utf8_replaced, stats.utf8_skipped, settings.utf8_errors,
                    stats.empty_skipped)
  return {'version': VERSION, 'key': key_obj, 'dtype': settings.dtype,
          'tokenizer': tokenizer.identity(), 'split_by': settings.split_by,
          'split_rule': SPLIT_RULE if settings.split_by == 'document' else 'tail',
          'shards': metas, 'tokens': totals, 'stats': dataclasses.asdict(stats)}
