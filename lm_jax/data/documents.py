"""Document sources: JSONL (.gz, .zst), Parquet, a local Hugging Face dataset, text files.

A corpus is cut into *chunks* (`plan_chunks`), each read on its own and in order
(`read_chunk`), so preparation can stream a corpus bigger than memory and spread
the chunks over worker processes while the result stays the same:

  jsonl        one document per line, its `data.text_field` (a string); an
               uncompressed file is cut into byte ranges of ~chunk_bytes at line
               starts (a line belongs to the range its first byte is in);
               .jsonl.gz / .jsonl.zst are read whole, one chunk per file
  parquet      one document per row, column `data.text_field`; one chunk per row group
  hf           a `datasets` directory written by `save_to_disk` (a Dataset, or a
               DatasetDict whose 'train' split is read): its Arrow files are read as
               record-batch streams, one chunk per file; `datasets` is not imported
  text         one document per file (today's text files), files grouped into chunks

Nothing is read whole: lines, record batches and files are read one at a time.
Invalid UTF-8 follows `data.utf8_errors` (replace: U+FFFD, skip: drop the
document, error: stop); each chunk counts what it replaced, skipped, and the
empty documents it dropped (`ChunkStats`), and preparation reports the totals.
"""

import dataclasses
import gzip
import io
import json
import os
from typing import Iterator

from lm_jax.data import sources

FORMATS = ('auto', 'text', 'jsonl', 'parquet', 'hf')
UTF8_ERRORS = ('replace', 'skip', 'error')
_JSONL_SUFFIXES = ('.jsonl', '.jsonl.gz', '.jsonl.zst', '.json', '.ndjson')
DEFAULT_CHUNK_BYTES = 64 << 20


class SourceError(ValueError):
  """A source the user must fix: names the file (and line or column) and what is valid."""


@dataclasses.dataclass(frozen=True)
class Chunk:
  """A piece of the corpus read by one worker: `part` is a byte range, a row group, or files."""
  format: str
  paths: tuple[str, ...]
  part: tuple[int, ...] = ()   # jsonl: (start, end) bytes; parquet: (row_group,)
  size: int = 0                # input bytes (progress, max_bytes)


@dataclasses.dataclass
class ChunkStats:
  documents: int = 0
  text_chars: int = 0
  utf8_replaced: int = 0
  utf8_skipped: int = 0
  empty_skipped: int = 0

  def add(self, other: 'ChunkStats') -> None:
    for f in dataclasses.fields(self):
      setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def is_hf_dir(path: str) -> bool:
  """Whether `path` is a directory written by datasets' save_to_disk."""
  return os.path.isdir(path) and any(
      os.path.exists(os.path.join(path, f)) for f in ('state.json', 'dataset_dict.json'))


def file_format(path: str, fmt: str = 'auto') -> str:
  """The format of one file or HF directory: `fmt`, or guessed from its name."""
  if fmt != 'auto':
    return fmt
  if is_hf_dir(path):
    return 'hf'
  name = path.lower()
  if name.endswith(_JSONL_SUFFIXES):
    return 'jsonl'
  if name.endswith('.parquet'):
    return 'parquet'
  return 'text'


def source_format(source: str, file_glob: str, fmt: str = 'auto') -> str:
  """The one format of a source (its files' formats must agree)."""
  if fmt != 'auto':
    return fmt
  if source == 'stdlib':
    return 'text'
  if is_hf_dir(source):
    return 'hf'
  formats = {file_format(p) for p in sources.list_files(source, file_glob)}
  if len(formats) > 1:
    raise SourceError(f'data.source={source!r} mixes formats {sorted(formats)}; set '
                      "data.format or data.file_glob so that one kind is read")
  return formats.pop()


def _hf_arrow_files(directory: str) -> list[str]:
  """The Arrow files of a save_to_disk directory (its 'train' split for a DatasetDict)."""
  if os.path.exists(os.path.join(directory, 'dataset_dict.json')):
    with open(os.path.join(directory, 'dataset_dict.json'), encoding='utf-8') as f:
      splits = json.load(f).get('splits', [])
    if 'train' not in splits:
      raise SourceError(f'data.source={directory!r}: a DatasetDict without a train split '
                        f'(splits {splits}); give the split directory itself')
    directory = os.path.join(directory, 'train')
  with open(os.path.join(directory, 'state.json'), encoding='utf-8') as f:
    state = json.load(f)
  return [os.path.join(directory, d['filename']) for d in state['_data_files']]


def source_files(source: str, file_glob: str, fmt: str) -> list[str]:
  """The files a document source reads, in corpus order (content-fingerprinted)."""
  if fmt == 'hf':
    if not is_hf_dir(source):
      raise SourceError(f'data.source={source!r} is not a datasets save_to_disk directory '
                        '(no state.json or dataset_dict.json in it)')
    return _hf_arrow_files(source)
  return sources.list_files(source, file_glob)


def _jsonl_ranges(path: str, chunk_bytes: int) -> list[tuple[int, int]]:
  size = os.path.getsize(path)
  if path.endswith(('.gz', '.zst')):
    return [(0, size)]
  return [(a, min(a + chunk_bytes, size)) for a in range(0, max(size, 1), chunk_bytes)]


def plan_chunks(files: list[str], fmt: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                max_bytes: int = 0) -> list[Chunk]:
  """The chunks of `files` in corpus order; with max_bytes, the prefix of chunks reaching
  it (an uncompressed JSONL range is cut at max_bytes: the lines starting before it)."""
  chunks: list[Chunk] = []
  if fmt == 'jsonl':
    for path in files:
      chunks += [Chunk('jsonl', (path,), r, r[1] - r[0]) for r in _jsonl_ranges(path, chunk_bytes)]
  elif fmt == 'parquet':
    import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
    for path in files:
      meta = pq.ParquetFile(path).metadata
      chunks += [Chunk('parquet', (path,), (g,), meta.row_group(g).total_byte_size)
                 for g in range(meta.num_row_groups)]
  elif fmt == 'hf':
    chunks = [Chunk('hf', (p,), (), os.path.getsize(p)) for p in files]
  elif fmt == 'text':
    group, size = [], 0
    for path in files:
      group.append(path)
      size += os.path.getsize(path)
      if size >= chunk_bytes:
        chunks.append(Chunk('text', tuple(group), (), size))
        group, size = [], 0
    if group:
      chunks.append(Chunk('text', tuple(group), (), size))
  else:
    raise SourceError(f'data.format={fmt!r}: choose one of {", ".join(map(repr, FORMATS))}')
  if max_bytes:
    total, kept = 0, []
    for c in chunks:
      if total >= max_bytes:
        break
      if c.format == 'jsonl' and c.size > max_bytes - total and not c.paths[0].endswith(
          ('.gz', '.zst')):  # the last byte range stops at max_bytes (at a line start)
        c = Chunk('jsonl', c.paths, (c.part[0], c.part[0] + max_bytes - total), max_bytes - total)
      kept.append(c)
      total += c.size
    chunks = kept
  return chunks


def _decode(data: bytes, where: str, utf8_errors: str, stats: ChunkStats) -> str | None:
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError as e:
    if utf8_errors == 'error':
      raise SourceError(f'{where}: invalid UTF-8 ({e}); set data.utf8_errors=replace or '
                        'skip to read it anyway') from e
    if utf8_errors == 'skip':
      stats.utf8_skipped += 1
      return None
    stats.utf8_replaced += 1
    return data.decode('utf-8', errors='replace')


def _open_lines(path: str) -> io.BufferedIOBase:
  if path.endswith('.gz'):
    return gzip.open(path, 'rb')
  if path.endswith('.zst'):
    import zstandard  # pylint: disable=g-import-not-at-top
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, 'rb')),
                             buffer_size=1 << 20)
  return open(path, 'rb', buffering=1 << 20)


def _field(record, field: str, where: str) -> str:
  if not isinstance(record, dict):
    raise SourceError(f'{where}: a JSON {type(record).__name__}, expected an object with '
                      f'a {field!r} field')
  if field not in record:
    raise SourceError(f'{where}: no field data.text_field={field!r}; the record has '
                      f'{sorted(record)[:10]}')
  value = record[field]
  if not isinstance(value, str):
    raise SourceError(f'{where}: field {field!r} is a {type(value).__name__}, not a string; '
                      'data.text_field must name a text field')
  return value


def _jsonl_docs(chunk: Chunk, field: str, utf8_errors: str,
                stats: ChunkStats) -> Iterator[str]:
  """The lines that start in the chunk's byte range (a compressed file: all of them;
  positions in messages are then offsets in the decompressed text)."""
  path, (start, end) = chunk.paths[0], chunk.part
  if path.endswith(('.gz', '.zst')):
    start, end = 0, float('inf')
  with _open_lines(path) as f:
    if start:
      f.seek(start - 1)
      f.readline()  # the line that started before this range belongs to the previous one
    pos = f.tell() if start else 0
    while pos < end:
      line = f.readline()
      if not line:
        break
      where, pos = f'{path}: byte {pos}', pos + len(line)
      stripped = line.strip()
      if not stripped:
        continue
      text = _decode(stripped, where, utf8_errors, stats)
      if text is None:
        continue
      try:
        record = json.loads(text)
      except ValueError as e:
        raise SourceError(f'{where}: not JSON ({e}); a JSONL file holds one JSON object '
                          'per line') from e
      yield _field(record, field, where)


def _arrow_texts(batches, field: str, path: str) -> Iterator[str]:
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  for batch in batches:
    names = batch.schema.names
    if field not in names:
      raise SourceError(f'{path}: no column data.text_field={field!r}; columns: {names}')
    column = batch.column(names.index(field))
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
      raise SourceError(f'{path}: column {field!r} has type {column.type}, not text; '
                        'data.text_field must name a string column')
    for value in column.to_pylist():
      yield '' if value is None else value


def _parquet_docs(chunk: Chunk, field: str) -> Iterator[str]:
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  path = chunk.paths[0]
  pf = pq.ParquetFile(path)
  names = pf.schema_arrow.names
  if field not in names:
    raise SourceError(f'{path}: no column data.text_field={field!r}; columns: {names}')
  yield from _arrow_texts(pf.iter_batches(batch_size=1024, row_groups=list(chunk.part),
                                          columns=[field]), field, path)


def _hf_docs(chunk: Chunk, field: str) -> Iterator[str]:
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  path = chunk.paths[0]
  with pa.memory_map(path) as source:
    yield from _arrow_texts(pa.ipc.open_stream(source), field, path)


def _text_docs(chunk: Chunk, utf8_errors: str, stats: ChunkStats) -> Iterator[str]:
  for path in chunk.paths:
    with open(path, 'rb') as f:
      text = _decode(f.read(), path, utf8_errors, stats)
    if text is not None:
      yield text


def read_chunk(chunk: Chunk, text_field: str = 'text', utf8_errors: str = 'replace',
               stats: ChunkStats | None = None) -> Iterator[str]:
  """The non-empty documents of `chunk` in order; counts into `stats`."""
  stats = stats if stats is not None else ChunkStats()
  if chunk.format == 'jsonl':
    docs = _jsonl_docs(chunk, text_field, utf8_errors, stats)
  elif chunk.format == 'parquet':
    docs = _parquet_docs(chunk, text_field)
  elif chunk.format == 'hf':
    docs = _hf_docs(chunk, text_field)
  else:
    docs = _text_docs(chunk, utf8_errors, stats)
  for doc in docs:
    if not doc:
      stats.empty_skipped += 1
      continue
    stats.documents += 1
    stats.text_chars += len(doc)
    yield doc
