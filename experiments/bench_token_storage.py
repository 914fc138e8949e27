"""Prepared-token storage: raw memory-mapped .bin (the project's) vs ArrayRecord (issue 8).

    nice -n 10 python experiments/bench_token_storage.py [--tokens 200000000] [--out r.jsonl]

Generated random token ids (uint16, vocabulary 50257; no download) are written under --dir
(default /tmp/bench_storage, deleted afterwards unless --keep), as one file per format or as
files of --shard-tokens tokens (a preparation's shards), in these formats:

  memmap      raw .bin, the format of lm_jax/data/prepare.py (ndarray.tofile in ~1 MB
              pieces), read through the project's own classes: TokenStream (np.memmap,
              lazily) cut by pipeline.Windows into non-overlapping windows of L + 1 tokens.
              One file serves every L: the window length is chosen at load time.
  ar_default  ArrayRecord, one record per window of L + 1 tokens (the uint16 bytes), the
              writer's default options (array_record 0.8.6: group_size:1, zstd:3)
  ar_raw      ArrayRecord 'group_size:1,uncompressed'
  ar_g65536   ArrayRecord 'group_size:65536' (the C++ library's documented default, for
              sequential reading; grain asks for group_size:1)
  An ArrayRecord file fixes L: one file per window length.

Each round (--rounds, default 3) writes every file afresh (write + fsync: MB/s of token bytes,
size) and then, for L = 256 and L = 1024 (batch 8: the CPU bench model's shape and a longer
one), reads batches of 8 random window indices (seeded rng, the same for every format) in the
order memmap, ar_default, ar_raw, ar_g65536 (A B A B over rounds):

  cold         the files' pages evicted (fsync + posix_fadvise DONTNEED, checked with
               fincore; unprivileged, unlike drop_caches, which --drop-caches also does),
               fresh readers (opening counts in the first batch), --cold-batches batches,
               one window at a time: Windows[k] / ArrayRecordDataSource[k]
  cold_random  memmap only: the same with the maps madvise(MADV_RANDOM)d (other windows; the
               default read-ahead of a fault is the device's read_ahead_kb, 8 MB here)
  cold_range   ArrayRecord only: the same through read(k, k + 1) (other windows)
  plain        warm cache, one window at a time, as cold
  range        ArrayRecord only: warm, ArrayRecordReader.read(k, k + 1) per window
  batched      warm, the 8 indices at once: a fancy-indexed memmap gather per shard /
               ArrayRecordDataSource.__getitems__
  grain        warm, the project's loader: pipeline.train_dataset (grain MapDataset of
               shuffled window indices -> batch -> _read_rows) + train_iterator (prefetch 2);
               ArrayRecord plugs in as 2-D example rows (windows_of -> ExampleRows)
  grain_range  ArrayRecord only: the same over read(k, k + 1)

The _range modes exist because ArrayRecordDataSource reads a record with read([k]), whose
ParallelReadRecordsWithIndices builds a per-chunk table (one chunk per record at
group_size:1) on every call: O(records in the file) per read. Every batch is int32
[8, L + 1] (what Windows returns). Reported: batches/s, median and p99 latency per batch, the
foreign load (other processes' busy CPU meanwhile, /proc/stat, in cores); the table holds
medians over rounds and format / memmap per round (a _range mode against memmap's cold,
plain or grain) as median [min, max].
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments.bench_prepare import append_jsonl  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments.token_storage_formats import (  # pylint: disable=g-import-not-at-top,wrong-import-position
    AR_OPTIONS, BATCH, DTYPE, FORMATS, grain_iterator, open_reader, same_windows, write_arrayrecord,
    write_bin)

VOCAB = 50257
MODES = ('cold', 'cold_random', 'cold_range', 'plain', 'range', 'batched', 'grain', 'grain_range')
BASE_MODE = {'cold_random': 'cold', 'cold_range': 'cold', 'range': 'plain', 'grain_range': 'grain'}  # what memmap does instead


# ---- page cache, load --------------------------------------------------------------------

def evict(path: str) -> None:
  """Drops `path`'s pages from the page cache (works unprivileged for clean pages)."""
  fd = os.open(path, os.O_RDONLY)
  try:
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
  finally:
    os.close(fd)


def resident_fraction(paths: list[str]) -> float | None:
  """Fraction of `paths` in the page cache (util-linux fincore), None if unavailable."""
  try:
    out = subprocess.run(['fincore', '-b', '-n', '-o', 'RES,SIZE', *paths], check=True,
                         capture_output=True, text=True).stdout.split()
    res, size = np.asarray(out, np.int64).reshape(-1, 2).sum(0)
    return float(res / max(size, 1))
  except (OSError, subprocess.CalledProcessError, ValueError):
    return None


def warm(path: str) -> None:
  with open(path, 'rb') as f:
    while f.read(16 << 20):
      pass


def drop_caches(really: bool) -> str:
  """Drops the whole page cache (needs root and a writable /proc) if `really`; else says
  whether it could (every job on the machine would lose its cache: per-file eviction is
  what the cold reads use)."""
  path = '/proc/sys/vm/drop_caches'
  if not really:
    return 'writable, not used' if os.access(path, os.W_OK) else 'not writable'
  try:
    with open(path, 'w', encoding='ascii') as f:
      f.write('3\n')
    return 'dropped'
  except OSError as e:
    return f'failed: {e.strerror}'


def cpu_busy() -> float:
  """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
  with open('/proc/stat', encoding='ascii') as f:
    fields = [int(x) for x in f.readline().split()[1:]]
  return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf('SC_CLK_TCK')


def own_cpu() -> float:
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


class Load:
  """Foreign load over a span: other processes' busy CPU seconds / wall seconds."""

  def __enter__(self):
    self.t0, self.busy0, self.own0 = time.perf_counter(), cpu_busy(), own_cpu()
    return self

  def __exit__(self, *exc):
    wall = time.perf_counter() - self.t0
    own = own_cpu() - self.own0
    self.foreign = max(cpu_busy() - self.busy0 - own, 0.0) / max(wall, 1e-9)
    self.own_cores = own / max(wall, 1e-9)


# ---- measuring ---------------------------------------------------------------------------

def timed_batches(next_batch, keys_NxB: np.ndarray, seconds: float, min_batches: int = 3):
  """Latency (s) of each batch until `seconds` pass (at least min_batches, at most all keys)."""
  lat, start = [], time.perf_counter()
  for keys in keys_NxB:  # pylint: disable=not-an-iterable
    t = time.perf_counter()
    out = next_batch(keys)
    lat.append(time.perf_counter() - t)
    del out
    if time.perf_counter() - start > seconds and len(lat) >= min_batches:
      break
  return np.asarray(lat)


def summary(lat: np.ndarray) -> dict:
  return {'batches': int(len(lat)), 'batches_per_s': float(len(lat) / lat.sum()),
          'median_ms': float(np.median(lat) * 1e3), 'p99_ms': float(np.percentile(lat, 99) * 1e3),
          'first_ms': float(lat[0] * 1e3)}


def read_modes(fmt: str, paths: list[str], seq_len: int, keys_NxB: np.ndarray, seed: int,
               seconds: float, cold_batches: int) -> list[dict]:
  """The read measurements of one format's files (MODES; range modes for ArrayRecord)."""
  window, out = seq_len + 1, []
  reader = None
  for mode in ('cold', 'cold_range') if fmt != 'memmap' else ('cold', 'cold_random'):
    if hasattr(reader, 'close'):
      reader.close()
    reader = None  # a live map keeps its pages in the cache
    for path in paths:
      evict(path)
    resident = resident_fraction(paths)
    with Load() as load:
      t = time.perf_counter()
      reader = open_reader(fmt, paths, window, range_reads=mode == 'cold_range')
      if mode == 'cold_random':
        reader.advise_random()
      open_s = time.perf_counter() - t
      # the second cold mode reads other windows: the VM's host may cache what cold read
      first = cold_batches if mode != 'cold' else 0
      lat = timed_batches(reader.batch, keys_NxB[first:first + cold_batches], seconds)
      lat[0] += open_s
    out.append({'mode': mode, 'resident_before': resident, 'open_ms': open_s * 1e3,
                'resident_after': resident_fraction(paths), **summary(lat),
                'foreign_cores': load.foreign, 'own_cores': load.own_cores})
  reader = open_reader(fmt, paths, window)
  for path in paths:
    warm(path)
  resident = resident_fraction(paths)
  ranged = None if fmt == 'memmap' else open_reader(fmt, paths, window, range_reads=True)
  modes = [('plain', reader), ('batched', reader), ('grain', reader)]
  if ranged is not None:
    modes[1:1] = [('range', ranged)]
    modes.append(('grain_range', ranged))
  for mode, r in modes:
    if mode.startswith('grain'):
      it = grain_iterator(r, seq_len, seed)
      fn = lambda _, it=it: next(it)['inputs']
    else:
      fn = r.batched if mode == 'batched' else r.batch
    for _ in range(3):
      fn(keys_NxB[0])
    with Load() as load:
      lat = timed_batches(fn, keys_NxB[1:], seconds)
    out.append({'mode': mode, 'resident_before': resident, **summary(lat),
                'foreign_cores': load.foreign, 'own_cores': load.own_cores})
  for r in (reader, ranged):
    if hasattr(r, 'close'):
      r.close()
  return out


def ratio_text(values: list[float]) -> str:
  return f'{np.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]'


def print_table(records: list[dict]) -> None:
  """Medians over rounds, and per-round format / memmap ratios (median [min, max])."""
  def rows(**match):
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]
  print('\nwrite + fsync (MB/s of token bytes; ratio = format / memmap, per round)')
  print('| format | L | MB/s | file MB | size / tokens | ratio |\n|---|---:|---:|---:|---:|---:|')
  base = rows(kind='write', format='memmap')
  seq_lens = sorted({r['seq_len'] for r in rows(kind='write') if r['seq_len']})
  for fmt, seq_len in [('memmap', None)] + [(f, L) for L in seq_lens for f in FORMATS[1:]]:
    got = rows(kind='write', format=fmt, seq_len=seq_len)
    if not got:
      continue
    ratio = '' if fmt == 'memmap' else ratio_text(
        [g['mb_per_s'] / b['mb_per_s'] for g, b in zip(got, base)])
    print(f'| {fmt} | {seq_len or "any"} | {np.median([g["mb_per_s"] for g in got]):.0f} | '
          f'{got[0]["file_mb"]:.0f} | {got[0]["file_mb"] / got[0]["token_mb"]:.3f} | {ratio} |')
  print('\nreads, batch 8 x (L + 1) at random window indices (medians over rounds; '
        'ratio = format / memmap batches/s, per round)')
  print('| L | mode | format | batches/s | median ms | p99 ms | ratio | foreign cores |\n'
        '|---:|---|---|---:|---:|---:|---:|---:|')
  for seq_len in sorted({r['seq_len'] for r in rows(kind='read')}):
    for mode in MODES:
      base = rows(kind='read', seq_len=seq_len, mode=BASE_MODE.get(mode, mode),
                  format='memmap')
      for fmt in FORMATS:
        got = rows(kind='read', seq_len=seq_len, mode=mode, format=fmt)
        if not got:
          continue
        ratio = '' if fmt == 'memmap' and mode not in BASE_MODE else ratio_text(
            [g['batches_per_s'] / b['batches_per_s'] for g, b in zip(got, base)])
        med = {k: np.median([g[k] for g in got]) for k in
               ('batches_per_s', 'median_ms', 'p99_ms', 'foreign_cores')}
        print(f'| {seq_len} | {mode} | {fmt} | {med["batches_per_s"]:,.0f} | '
              f'{med["median_ms"]:.3f} | {med["p99_ms"]:.3f} | {ratio} | '
              f'{med["foreign_cores"]:.2f} |')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--tokens', type=int, default=200_000_000)
  p.add_argument('--shard-tokens', type=int, default=0,
                 help='tokens per file (0: one file per format and L)')
  p.add_argument('--seq-lens', default='256,1024')
  p.add_argument('--rounds', type=int, default=3)
  p.add_argument('--seconds', type=float, default=1.5, help='time per read measurement')
  p.add_argument('--cold-batches', type=int, default=100, help='batches of a cold read')
  p.add_argument('--formats', default=','.join(FORMATS))
  p.add_argument('--drop-caches', action='store_true',
                 help='also drop the whole page cache first (root; disturbs other jobs)')
  p.add_argument('--dir', default='/tmp/bench_storage')
  p.add_argument('--keep', action='store_true')
  p.add_argument('--out', default='')
  args = p.parse_args()
  seq_lens = [int(s) for s in args.seq_lens.split(',')]
  formats = [f for f in FORMATS if f in args.formats.split(',')]
  if 'memmap' not in formats:
    p.error('--formats must include memmap (the ratios are against it)')
  shards = max(1, -(-args.tokens // args.shard_tokens)) if args.shard_tokens > 0 else 1
  meta = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
          'machine': f'{platform.machine()}, {os.cpu_count()} CPUs',
          'python': platform.python_version(), 'tokens': args.tokens, 'files': shards,
          'drop_caches': drop_caches(args.drop_caches), 'loadavg_start': os.getloadavg()}
  print(json.dumps(meta), flush=True)
  os.makedirs(args.dir, exist_ok=True)
  ids = np.random.default_rng(0).integers(0, VOCAB, args.tokens).astype(DTYPE)
  token_mb = ids.nbytes / 1e6
  records = []
  try:
    for rnd in range(args.rounds):
      paths = {L: {} for L in seq_lens}
      for fmt in formats:  # write, in the alternating order
        for seq_len in ([None] if fmt == 'memmap' else seq_lens):
          ext = 'bin' if fmt == 'memmap' else 'ar'
          files = [os.path.join(args.dir, f'{fmt}-{seq_len or "all"}-{i:05d}.{ext}')
                   for i in range(shards)]
          with Load() as load:
            secs = (write_bin(files, ids) if fmt == 'memmap' else
                    write_arrayrecord(files, ids, seq_len + 1, AR_OPTIONS[fmt]))
          size = sum(os.path.getsize(f) for f in files) / 1e6
          rec = {**meta, 'kind': 'write', 'round': rnd, 'format': fmt, 'seq_len': seq_len,
                 'seconds': secs, 'mb_per_s': token_mb / secs, 'token_mb': token_mb,
                 'file_mb': size, 'foreign_cores': load.foreign}
          records.append(rec)
          print(f'round {rnd} write {fmt:10s} L={seq_len or "any"}: {rec["mb_per_s"]:.0f} MB/s, '
                f'{size:.0f} MB, foreign {load.foreign:.2f} cores', flush=True)
          for L in ([seq_len] if seq_len else seq_lens):
            paths[L][fmt] = files
      for seq_len in seq_lens:
        rng = np.random.default_rng([rnd, seq_len])
        keys = rng.integers(0, args.tokens // (seq_len + 1), size=(100_000, BATCH))
        assert same_windows(paths[seq_len], ids, seq_len, keys[0]), 'formats disagree'
        for fmt in formats:
          for rec in read_modes(fmt, paths[seq_len][fmt], seq_len, keys, seed=rnd,
                                seconds=args.seconds, cold_batches=args.cold_batches):
            rec.update(meta, kind='read', round=rnd, format=fmt, seq_len=seq_len)
            records.append(rec)
            print(f'round {rnd} L={seq_len} {rec["mode"]:11s} {fmt:10s}: '
                  f'{rec["batches_per_s"]:9,.0f} batches/s, median {rec["median_ms"]:.3f} ms, '
                  f'p99 {rec["p99_ms"]:.3f} ms ({rec["batches"]} batches; resident before '
                  f'{rec["resident_before"]}; foreign {rec["foreign_cores"]:.2f} cores)',
                  flush=True)
      if not args.keep:  # the next round writes them afresh
        for f in {f for by_fmt in paths.values() for files in by_fmt.values() for f in files}:
          os.remove(f)
  finally:
    if not args.keep:
      shutil.rmtree(args.dir, ignore_errors=True)
  print(f'load average at the end: {os.getloadavg()}')
  print_table(records)
  if args.out:
    append_jsonl(args.out, records)


if __name__ == '__main__':
  main()
