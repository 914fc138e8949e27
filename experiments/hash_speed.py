"""How fast the token cache hashes corpus content (lm_jax/data/fingerprint.py), in MB/s.

    python experiments/hash_speed.py [--mb 200] [--repeats 3]

Writes a file of random bytes, then times `file_digest` (sha256, the key of the
token cache) and, for comparison, blake2b and a plain read of the same file.
The file is read once before timing, so the numbers are for a file in the page
cache (a cold disk adds its own read speed). Also times a second
`file_digests` call, which the stat memo answers without reading.
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lm_jax.data import fingerprint  # noqa: E402


def _best_s(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def _blake2b(path: str) -> None:
  with open(path, 'rb') as f:
    hashlib.file_digest(f, 'blake2b')


def _read(path: str) -> None:
  with open(path, 'rb', buffering=0) as f:
    buf = bytearray(1 << 20)
    while f.readinto(buf):
      pass


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--mb', type=int, default=200)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'corpus.bin')
    with open(path, 'wb') as f:
      for _ in range(args.mb):
        f.write(os.urandom(1 << 20))
    _read(path)  # warm the page cache
    size_mb = os.path.getsize(path) / 1e6
    for name, fn in (('read only', lambda: _read(path)),
                     ('sha256 (file_digest)', lambda: fingerprint.file_digest(path)),
                     ('blake2b', lambda: _blake2b(path))):
      seconds = _best_s(fn, args.repeats)
      print(f'{name:24s} {size_mb / seconds:8.0f} MB/s  ({seconds:.3f} s for {size_mb:.0f} MB)')
    memo = os.path.join(tmp, 'memo')
    fingerprint._RACY_NS = 0  # the file was just written; trust the memo at once
    fingerprint.file_digests([path], memo)
    seconds = _best_s(lambda: fingerprint.file_digests([path], memo), args.repeats)
    print(f'{"memo hit (file_digests)":24s} {seconds * 1e3:8.2f} ms')


if __name__ == '__main__':
  main()
