"""A run's corpus through preparation: the config -> chunks, fingerprint, tokenizer sample,
and the prepared train / val / test token streams (lm_jax/data/prepare.py).

Used instead of the single cached token array (token_cache.py) when documents are
separated by special tokens (data.separator resolves to eos / bos / bos_eos: every
JSONL / Parquet / HF source) or split whole (data.split_by='document'); text files
joined by blank lines keep today's stream exactly (the nanoGPT reproductions).
"""

import dataclasses
import functools
from typing import Any, Callable

from lm_jax.data import boundaries
from lm_jax.data import documents
from lm_jax.data import fingerprint
from lm_jax.data import mixture
from lm_jax.data import prepare
from lm_jax.data import special_tokens

_SAMPLE_BYTES = 64 << 20  # text a char / bpe tokenizer is trained on
CORPUS_VERSION = 3


def uses_preparation(data_cfg: Any) -> bool:
  """Whether the run's corpus goes through preparation (else: token_cache's one array)."""
  return (bool(data_cfg.mixture) or data_cfg.split_by == 'document'
          or boundaries.resolve_separator(data_cfg) != 'blank_line')


def plan(data_cfg: Any, cache_dir: str) -> tuple[list[str], list[documents.Chunk], dict]:
  """(files, chunks, corpus fingerprint) of the source: content digests, no text read."""
  fmt = documents.source_format(data_cfg.source, data_cfg.file_glob, data_cfg.format)
  files = documents.source_files(data_cfg.source, data_cfg.file_glob, fmt)
  chunks = documents.plan_chunks(files, fmt, data_cfg.chunk_mb << 20, data_cfg.max_bytes)
  used = sorted({p for c in chunks for p in c.paths}, key=files.index)
  digests = fingerprint.file_digests(used, memo_dir=cache_dir)
  corpus_fp = {'version': CORPUS_VERSION, 'format': fmt, 'text_field': data_cfg.text_field,
               'utf8_errors': data_cfg.utf8_errors, 'chunk_mb': data_cfg.chunk_mb,
               'max_bytes': data_cfg.max_bytes,
               'files': [[c.size, *c.part, *[digests[used.index(p)] for p in c.paths]]
                         for c in chunks]}
  return files, chunks, corpus_fp


def sample_text(data_cfg: Any, chunks: list[documents.Chunk]) -> str:
  """The first ~64 MB of documents, blank-line separated: what char / bpe train on."""
  texts, total = [], 0
  for chunk in chunks:
    for doc in documents.read_chunk(chunk, data_cfg.text_field, data_cfg.utf8_errors):
      texts.append(doc)
      total += len(doc)
      if total >= _SAMPLE_BYTES:
        return '\n\n'.join(texts)
  return '\n\n'.join(texts)


def prepared(data_cfg: Any, tokenizer, chunks: list[documents.Chunk], corpus_fp: dict,
             cache_dir: str, *, roles: tuple[str, ...], progress: bool = True,
             workers: int | None = None, is_primary: bool = True) -> prepare.Prepared:
  """The preparation of the corpus by `tokenizer` (made now unless it exists)."""
  sep = boundaries.resolve_separator(data_cfg)
  ids = special_tokens.special_ids(tokenizer, boundaries.separator_roles(data_cfg))
  vocab = special_tokens.model_vocab_size(tokenizer, tuple(roles) + tuple(ids))
  settings = prepare.Settings(
      text_field=data_cfg.text_field, utf8_errors=data_cfg.utf8_errors,
      bos_id=ids.get('bos'), eos_id=ids.get('eos'), split_by=data_cfg.split_by,
      val_fraction=float(data_cfg.val_fraction), test_fraction=float(data_cfg.test_fraction),
      dtype='uint16' if vocab <= 1 << 16 else 'uint32', source=data_cfg.source)
  key = {'version': prepare.VERSION, 'corpus': corpus_fp, 'tokenizer': tokenizer.identity(),
         'separator': sep, 'ids': ids, 'dtype': settings.dtype, 'split_by': settings.split_by}
  if settings.split_by == 'document':
    key.update(val=settings.val_fraction, test=settings.test_fraction)
  return prepare.prepare(chunks, tokenizer, prepare.preparation_dir(cache_dir, key), settings,
                         key, workers=workers or data_cfg.prepare_workers, progress=progress,
                         is_primary=is_primary)


@dataclasses.dataclass
class CorpusPlan:
  """The sources of a run (one, or a mixture's), planned: nothing tokenized yet."""
  configs: list                  # each component's data config
  chunks: list                   # each component's chunks
  fingerprints: list             # each component's corpus fingerprint
  weights: list | None           # mixture weights (None: one source)
  files: list[str]
  fingerprint: dict              # the whole corpus (keys tokenizers and checkpoints)
  read_text: Callable[[], str]   # the text a char / bpe tokenizer trains on


def plan_corpus(data_cfg: Any, cache_dir: str) -> CorpusPlan:
  """Plans data.source, or each source of data.mixture."""
  if data_cfg.mixture:
    parts = mixture.parse(data_cfg.mixture)
    configs = [mixture.component_config(data_cfg, src) for src, _ in parts]
    weights = [w for _, w in parts]
  else:
    configs, weights = [data_cfg], None
  plans = [plan(c, cache_dir) for c in configs]
  fps = [p[2] for p in plans]
  corpus_fp = fps[0] if weights is None else {'mixture': fps, 'weights': weights}
  read_text = functools.cache(lambda: '\n\n'.join(
      sample_text(c, p[1]) for c, p in zip(configs, plans)))
  return CorpusPlan(configs=configs, chunks=[p[1] for p in plans], fingerprints=fps,
                    weights=weights, files=[f for p in plans for f in p[0]],
                    fingerprint=corpus_fp, read_text=read_text)


def split_streams(corpus: CorpusPlan, tokenizer, cache_dir: str, *, roles: tuple[str, ...],
                  progress: bool, is_primary: bool = True) -> tuple[list[dict], str]:
  """({split: tokens} per component, the preparation directories joined by os.pathsep)."""
  import os  # pylint: disable=g-import-not-at-top
  streams, dirs = [], []
  for cfg, chunks, fp in zip(corpus.configs, corpus.chunks, corpus.fingerprints):
    prep = prepared(cfg, tokenizer, chunks, fp, cache_dir, roles=roles, progress=progress,
                    is_primary=is_primary)
    streams.append({s: prep.stream(s) for s in prepare.split_names(cfg.split_by)})
    dirs.append(prep.directory)
  return streams, os.pathsep.join(dirs)
