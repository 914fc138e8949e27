"""Text sources: this Python's standard library, or files from a path/glob/dir.

`corpus_files` decides *which* files a corpus is made of (cheaply, from file
sizes), so the token cache can be keyed without reading any text;
`read_corpus` reads exactly those files.
"""

import glob
import os
import sysconfig

SEPARATOR = b'\n\n'  # between files, so one file's last line never runs into the next
# Inside the stdlib these are not "the library": tests are huge and atypical,
# site-packages is whatever happens to be installed (not deterministic).
_STDLIB_SKIP = frozenset({'site-packages', 'dist-packages', 'test', 'tests', 'idle_test',
                          '__pycache__'})
_GLOB_CHARS = frozenset('*?[')


def _stdlib_files() -> list[str]:
  """Returns this Python's own stdlib *.py files, sorted by relative path."""
  root = sysconfig.get_paths()['stdlib']
  files = []
  for dirpath, dirnames, filenames in os.walk(root):
    rel = os.path.relpath(dirpath, root)
    if set(rel.split(os.sep)) & _STDLIB_SKIP:
      dirnames[:] = []
      continue
    files += [os.path.join(dirpath, f) for f in filenames if f.endswith('.py')]
  return sorted(files, key=lambda p: os.path.relpath(p, root))


def _directory_files(root: str, file_glob: str) -> list[str]:
  """Returns the files under `root` matching `file_glob`, recursively, sorted."""
  files = []
  for path in glob.glob(os.path.join(glob.escape(root), '**', file_glob), recursive=True):
    rel_parts = os.path.relpath(path, root).split(os.sep)
    # Hidden dirs hold .git, .venv and our own .cache/tokens: never corpus text.
    if any(part.startswith('.') for part in rel_parts[:-1]):
      continue
    if os.path.isfile(path):
      files.append(path)
  return sorted(files)


def list_files(source: str, file_glob: str = '*.py') -> list[str]:
  """Returns all files of `source` in corpus order; raises ValueError if none."""
  valid = ("expected 'stdlib', an existing file, a directory (its files matching "
           f'data.file_glob={file_glob!r} are read, recursively), or a glob pattern '
           'matching files')
  if source == 'stdlib':
    files = _stdlib_files()
  elif os.path.isfile(source):
    files = [source]
  elif os.path.isdir(source):
    files = _directory_files(source, file_glob)
    if not files:
      raise ValueError(f'data.source={source!r}: directory has no files matching '
                       f'data.file_glob={file_glob!r}; {valid}')
  elif _GLOB_CHARS & set(source):
    files = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
    if not files:
      raise ValueError(f'data.source={source!r}: glob matches no files; {valid}')
  else:
    raise ValueError(f'data.source={source!r}: no such file or directory; {valid}')
  if not files:
    raise ValueError(f'data.source={source!r}: found no files; {valid}')
  return files


def corpus_files(source: str, file_glob: str = '*.py', max_bytes: int = 0) -> list[str]:
  """Returns the files `read_corpus` reads: a prefix of `list_files` that reaches max_bytes."""
  files = list_files(source, file_glob)
  if not max_bytes:
    return files
  selected, total = [], 0
  for path in files:
    if total >= max_bytes:
      break
    selected.append(path)
    total += os.path.getsize(path) + (len(SEPARATOR) if len(selected) > 1 else 0)
  return selected


def _cut_utf8(data: bytes, n: int) -> bytes:
  """Returns data[:n], shortened so no UTF-8 character is cut in half."""
  if n >= len(data):
    return data
  # Step back over continuation bytes (0b10xxxxxx) to a character start.
  while n > 0 and (data[n] & 0xC0) == 0x80:
    n -= 1
  return data[:n]


def read_corpus(source: str, file_glob: str = '*.py', max_bytes: int = 0) -> tuple[str, list[str]]:
  """Returns (text, files): the files of `source` joined by blank lines, at most max_bytes."""
  files = corpus_files(source, file_glob, max_bytes)
  chunks, total = [], 0
  for i, path in enumerate(files):
    with open(path, 'rb') as f:
      data = f.read()
    if i:
      data = SEPARATOR + data
    if max_bytes:
      data = _cut_utf8(data, max_bytes - total)
    chunks.append(data)
    total += len(data)
  return b''.join(chunks).decode('utf-8', errors='replace'), files
