"""Corpus sources: stdlib, file, glob, directory; max_bytes; clear errors."""

import os
import sysconfig

import pytest

from lm_jax.data import sources


def _write(path, text):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding='utf-8')
  return str(path)


@pytest.fixture
def tree(tmp_path):
  """A directory with nested .py/.txt files and a hidden dir that must be skipped."""
  _write(tmp_path / 'b.py', 'bbb')
  _write(tmp_path / 'a.py', 'aaa')
  _write(tmp_path / 'sub' / 'c.py', 'ccc')
  _write(tmp_path / 'sub' / 'notes.txt', 'txt')
  _write(tmp_path / '.cache' / 'hidden.py', 'hidden')
  return tmp_path


def test_directory_recursive_sorted(tree):
  text, files = sources.read_corpus(str(tree), '*.py')
  assert [os.path.relpath(f, tree) for f in files] == ['a.py', 'b.py', os.path.join('sub', 'c.py')]
  assert text == 'aaa\n\nbbb\n\nccc'
  text, files = sources.read_corpus(str(tree), '*.txt')
  assert text == 'txt' and len(files) == 1


def test_single_file_and_glob(tree):
  text, files = sources.read_corpus(str(tree / 'sub' / 'notes.txt'))
  assert (text, files) == ('txt', [str(tree / 'sub' / 'notes.txt')])
  text, files = sources.read_corpus(str(tree / '*.py'))
  assert text == 'aaa\n\nbbb' and len(files) == 2
  text, _ = sources.read_corpus(str(tree / '**' / '*.py'))
  assert text == 'aaa\n\nbbb\n\nccc'


def test_max_bytes(tree):
  # 'aaa' + '\n\n' + 'bbb' = 8 bytes; stop reading there.
  text, files = sources.read_corpus(str(tree), '*.py', max_bytes=6)
  assert text == 'aaa\n\nb' and len(files) == 2
  text, files = sources.read_corpus(str(tree), '*.py', max_bytes=3)
  assert text == 'aaa' and len(files) == 1
  assert sources.corpus_files(str(tree), '*.py', max_bytes=6) == files + [str(tree / 'b.py')]
  text, _ = sources.read_corpus(str(tree), '*.py', max_bytes=0)
  assert len(text) == 13


def test_max_bytes_never_splits_a_character(tmp_path):
  path = _write(tmp_path / 'u.txt', 'aé🐍')  # 1 + 2 + 4 bytes
  assert sources.read_corpus(path, max_bytes=2)[0] == 'a'
  assert sources.read_corpus(path, max_bytes=3)[0] == 'aé'
  assert sources.read_corpus(path, max_bytes=6)[0] == 'aé'
  assert sources.read_corpus(path, max_bytes=7)[0] == 'aé🐍'


def test_invalid_utf8_is_replaced(tmp_path):
  (tmp_path / 'bad.txt').write_bytes(b'ok\xff\xfeok')
  assert sources.read_corpus(str(tmp_path / 'bad.txt'))[0] == 'ok\ufffd\ufffdok'


def test_errors_name_the_source(tmp_path, tree):
  missing = str(tmp_path / 'nope')
  with pytest.raises(ValueError, match="data.source='.*nope'.*no such file.*'stdlib'"):
    sources.read_corpus(missing)
  with pytest.raises(ValueError, match='glob matches no files'):
    sources.read_corpus(str(tmp_path / '*.rs'))
  with pytest.raises(ValueError, match=r"no files matching data.file_glob='\*.rs'"):
    sources.read_corpus(str(tree), '*.rs')


def test_stdlib_is_real_python_and_deterministic():
  text1, files1 = sources.read_corpus('stdlib', max_bytes=200_000)
  text2, files2 = sources.read_corpus('stdlib', max_bytes=200_000)
  assert (text1, files1) == (text2, files2)
  assert 199_990 < len(text1.encode('utf-8')) <= 200_000  # cut at a character boundary
  assert 'def ' in text1 and 'import ' in text1
  root = sysconfig.get_paths()['stdlib']
  assert all(f.startswith(root) and f.endswith('.py') for f in files1)
  all_files = sources.list_files('stdlib')
  assert all_files[:len(files1)] == files1 and all_files == sorted(all_files)
  assert not any(os.sep + 'site-packages' + os.sep in f for f in all_files)
  assert not any(os.sep + 'test' + os.sep in f for f in all_files)
