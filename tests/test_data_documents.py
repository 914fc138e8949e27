"""Document sources: every kind reads back the documents written, streamed by chunks; bad inputs."""

import gzip
import json

import numpy as np
import pytest

from lm_jax.data import documents

DOCS = ['first document\nwith two lines', 'zweites Dokument: äöü', '🐍 third', 'x' * 50]


def read_all(files, fmt, chunk_bytes=documents.DEFAULT_CHUNK_BYTES, field='text', **kw):
  stats = documents.ChunkStats()
  docs = [d for c in documents.plan_chunks(files, fmt, chunk_bytes)
          for d in documents.read_chunk(c, field, stats=stats, **kw)]
  return docs, stats


def write_jsonl(path, docs, field='text'):
  lines = ''.join(json.dumps({field: d, 'id': i}) + '\n' for i, d in enumerate(docs))
  if str(path).endswith('.gz'):
    with gzip.open(path, 'wt', encoding='utf-8') as f:
      f.write(lines)
  elif str(path).endswith('.zst'):
    import zstandard
    path.write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
  else:
    path.write_text(lines, encoding='utf-8')
  return str(path)


@pytest.mark.parametrize('name', ['c.jsonl', 'c.jsonl.gz', 'c.jsonl.zst'])
def test_jsonl_kinds(tmp_path, name):
  path = write_jsonl(tmp_path / name, DOCS)
  assert documents.file_format(path) == 'jsonl'
  docs, stats = read_all([path], 'jsonl')
  assert docs == DOCS and stats.documents == 4


@pytest.mark.parametrize('chunk_bytes', [1, 7, 40, 10_000])
def test_jsonl_byte_ranges_cover_each_line_once(tmp_path, chunk_bytes):
  many = [f'doc {i} ' + 'é' * (i % 7) for i in range(60)]
  path = write_jsonl(tmp_path / 'c.jsonl', many)
  assert read_all([path], 'jsonl', chunk_bytes)[0] == many


def test_parquet_row_groups(tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq
  path = str(tmp_path / 'c.parquet')
  pq.write_table(pa.table({'body': DOCS * 5, 'n': list(range(20))}), path, row_group_size=3)
  chunks = documents.plan_chunks([path], 'parquet')
  assert len(chunks) == 7
  assert read_all([path], 'parquet', field='body')[0] == DOCS * 5
  with pytest.raises(documents.SourceError, match="no column data.text_field='text'.*body"):
    read_all([path], 'parquet')
  with pytest.raises(documents.SourceError, match="column 'n' has type int64, not text"):
    read_all([path], 'parquet', field='n')


def test_hf_save_to_disk(tmp_path):
  import datasets
  ds = datasets.Dataset.from_dict({'text': DOCS * 3, 'label': list(range(12))})
  ds.save_to_disk(str(tmp_path / 'ds'))
  datasets.DatasetDict({'train': ds, 'validation': ds}).save_to_disk(str(tmp_path / 'dd'))
  for name in ('ds', 'dd'):
    src = str(tmp_path / name)
    assert documents.source_format(src, '*') == 'hf'
    files = documents.source_files(src, '*', 'hf')
    assert read_all(files, 'hf')[0] == DOCS * 3
  with pytest.raises(documents.SourceError, match="'label' has type int64"):
    read_all(documents.source_files(str(tmp_path / 'ds'), '*', 'hf'), 'hf', field='label')


def test_hf_json_and_parquet_data_files_read_as_those_formats(tmp_path):
  # datasets' json/parquet loaders read exactly these files: the same documents.
  import datasets
  path = write_jsonl(tmp_path / 'c.jsonl', DOCS)
  ds = datasets.load_dataset('json', data_files=path, split='train',
                             cache_dir=str(tmp_path / 'hf_cache'))
  assert read_all([path], 'jsonl')[0] == ds['text']


def test_text_files_one_document_each(tmp_path):
  for i, d in enumerate(DOCS):
    (tmp_path / f'{i}.txt').write_text(d, encoding='utf-8')
  files = [str(tmp_path / f'{i}.txt') for i in range(4)]
  assert read_all(files, 'text', chunk_bytes=10)[0] == DOCS


def test_missing_and_non_text_fields(tmp_path):
  path = write_jsonl(tmp_path / 'c.jsonl', DOCS)
  with pytest.raises(documents.SourceError, match=r"c.jsonl: byte 0: no field "
                     r"data.text_field='content'; the record has \['id', 'text'\]"):
    read_all([path], 'jsonl', field='content')
  with pytest.raises(documents.SourceError, match="field 'id' is a int, not a string"):
    read_all([path], 'jsonl', field='id')
  (tmp_path / 'bad.jsonl').write_text('{"text": "a"}\nnot json\n')
  with pytest.raises(documents.SourceError, match='bad.jsonl: byte 14: not JSON'):
    read_all([str(tmp_path / 'bad.jsonl')], 'jsonl')


def test_invalid_utf8_is_counted(tmp_path):
  path = tmp_path / 'c.jsonl'
  path.write_bytes(b'{"text": "ok"}\n{"text": "bad \xff\xfe"}\n{"text": ""}\n{"text": "fine"}\n')
  docs, stats = read_all([str(path)], 'jsonl')
  assert docs == ['ok', 'bad \ufffd\ufffd', 'fine']
  assert (stats.utf8_replaced, stats.utf8_skipped, stats.empty_skipped) == (1, 0, 1)
  docs, stats = read_all([str(path)], 'jsonl', utf8_errors='skip')
  assert docs == ['ok', 'fine'] and stats.utf8_skipped == 1
  with pytest.raises(documents.SourceError, match='byte 15: invalid UTF-8'):
    read_all([str(path)], 'jsonl', utf8_errors='error')


def test_max_bytes_takes_a_prefix_of_chunks(tmp_path):
  path = write_jsonl(tmp_path / 'c.jsonl', [f'doc {i}' for i in range(100)])
  all_chunks = documents.plan_chunks([path], 'jsonl', chunk_bytes=100)
  some = documents.plan_chunks([path], 'jsonl', chunk_bytes=100, max_bytes=250)
  assert some[:2] == all_chunks[:2] and some[2].part == (200, 250)
  lines = open(path, 'rb').read().splitlines(keepends=True)
  starts = np.cumsum([0] + [len(x) for x in lines])
  expected = [f'doc {i}' for i in range(100) if starts[i] < 250]
  assert read_all([path], 'jsonl', chunk_bytes=100)[0][:len(expected)] == expected
  assert [d for c in some for d in documents.read_chunk(c)] == expected


def test_mixed_formats_refused(tmp_path):
  write_jsonl(tmp_path / 'a.jsonl', DOCS)
  (tmp_path / 'b.txt').write_text('x')
  with pytest.raises(documents.SourceError, match=r"mixes formats \['jsonl', 'text'\]"):
    documents.source_format(str(tmp_path), '*')


def test_compressed_errors_name_the_offset(tmp_path):
  path = tmp_path / 'c.jsonl.gz'
  with gzip.open(path, 'wb') as f:
    f.write(b'{"text": "a"}\n{"body": "b"}\n')
  with pytest.raises(documents.SourceError, match=r"c.jsonl.gz: byte 14: no field"):
    read_all([str(path)], 'jsonl')
