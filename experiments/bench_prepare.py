"""Preparation and loader throughput on a generated JSONL corpus (no download).

    python experiments/bench_prepare.py --sizes-mb 256,1024 --workers 1,2 [--out r.jsonl]

--workers 1,2,1,2 runs each count twice (every run prepares from scratch in its own cache).

For each corpus size a JSONL corpus is generated under --dir (default
/tmp/bench_prepare, deleted afterwards unless --keep): ~2 KB documents of
random words, each with its own number (distinct texts). Each (size, workers)
preparation runs in a fresh subprocess (its own cache dir, so nothing is
reused) with the byte tokenizer and eos separators; it reports

  digest_s      hashing the files (sha256: the content key)
  prepare_s     reading, tokenizing, writing the shards
  MB/s          input MB / prepare_s
  peak RSS      sampled every 0.1 s from /proc: the sum over the process tree, and
                the largest process (ru_maxrss would not do: Linux carries a
                spawned worker's parent high-water mark across exec)
  foreign load  CPU time other processes used meanwhile, in cores (from /proc/stat)

Then, with --kill-resume, a 1-worker preparation of the smallest corpus is
killed (SIGKILL) when its first shard is finished and run again: its shards must equal a fresh
run's. Finally the loader: build_data on the largest prepared corpus at the
CPU bench model's batch shape (experiments/bench_nanogpt_cpu.py: batch 8,
seq_len 256), batches/s over --loader-batches batches, with and without
data.document_mask. Results go to stdout (a table) and --out (JSON lines).
"""

import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

_CHILD = r'''
import json, sys, time
sys.path.insert(0, {root!r})
from lm_jax.config.defaults import base_config
from lm_jax.data import prepared_corpus, tokenizers

def main():
  c = base_config().data
  c.update(source={source!r}, max_bytes=0, cache_dir={cache!r}, prepare_workers={workers},
           chunk_mb={chunk_mb})
  t0 = time.perf_counter()
  files, chunks, fp = prepared_corpus.plan(c, c.cache_dir)
  t1 = time.perf_counter()
  prep = prepared_corpus.prepared(c, tokenizers.ByteTokenizer(), chunks, fp, c.cache_dir,
                                  roles=('eos',), progress=False)
  t2 = time.perf_counter()
  print(json.dumps({{'digest_s': t1 - t0, 'prepare_s': t2 - t1, 'dir': prep.directory,
                    'tokens': prep.index['tokens'], 'chunks': len(chunks)}}))

if __name__ == '__main__':
  main()
'''


def generate(path: str, size_mb: int, seed: int = 0) -> int:
  """Writes a JSONL corpus of about size_mb MB; returns its bytes."""
  rng = np.random.default_rng(seed)
  letters = np.array(list('abcdefghijklmnopqrstuvwxyzéü'))
  words = np.array([''.join(rng.choice(letters, int(n))) for n in rng.integers(2, 10, 5000)])
  # JSON-escaped once; each line adds its own number, so every document is distinct.
  pool = [json.dumps(' '.join(rng.choice(words, int(n))), ensure_ascii=False)[1:-1].encode()
          for n in rng.integers(100, 500, 4000)]
  target, written, i = size_mb << 20, 0, 0
  with open(path, 'wb', buffering=1 << 22) as f:
    while written < target:
      lines = b''.join(b'{"id": %d, "text": "%d. %s"}\n' % (k, k, pool[k % 4000])
                       for k in range(i, i + 1000))
      f.write(lines)
      written += len(lines)
      i += 1000
  return os.path.getsize(path)


def _tree_rss(root: int) -> tuple[int, int]:
  """(sum, max) of VmRSS in bytes over `root` and its descendants, from /proc."""
  parent = {}
  for d in os.listdir('/proc'):
    if d.isdigit():
      try:
        with open(f'/proc/{d}/stat', encoding='ascii', errors='replace') as f:
          parent[int(d)] = int(f.read().rsplit(')', 1)[1].split()[1])
      except (OSError, ValueError, IndexError):
        continue  # the process exited while we read it
  tree, frontier = {root}, [root]
  while frontier:
    kids = [p for p, pp in parent.items() if pp in frontier and p not in tree]
    tree.update(kids)
    frontier = kids
  sizes = []
  for pid in tree:
    try:
      with open(f'/proc/{pid}/status', encoding='ascii') as f:
        sizes += [int(l.split()[1]) * 1024 for l in f if l.startswith('VmRSS:')]
    except OSError:
      continue  # the process exited while we read it
  return sum(sizes), max(sizes, default=0)


def cpu_busy() -> float:
  """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
  with open('/proc/stat', encoding='ascii') as f:
    fields = [int(x) for x in f.readline().split()[1:]]
  idle = fields[3] + fields[4]
  return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')


def append_jsonl(path: str, records) -> None:
  """Appends each record to `path` as one JSON line (values JSON cannot hold: their str)."""
  with open(path, 'a', encoding='utf-8') as f:
    for r in records:
      f.write(json.dumps(r, default=str) + '\n')


def run_child(source, cache, workers, chunk_mb, timeout=3600):
  """Runs one preparation in a fresh process tree; samples its RSS every 0.1 s."""
  import resource  # pylint: disable=g-import-not-at-top
  code = _CHILD.format(root=ROOT, source=source, cache=cache, workers=workers,
                       chunk_mb=chunk_mb)
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  busy0, t0 = cpu_busy(), time.perf_counter()
  proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
  peak_sum = peak_one = 0
  while proc.poll() is None:
    total, one = _tree_rss(proc.pid)
    peak_sum, peak_one = max(peak_sum, total), max(peak_one, one)
    if time.perf_counter() - t0 > timeout:
      proc.kill()
    time.sleep(0.1)
  stdout = proc.stdout.read()
  if proc.returncode:
    raise RuntimeError(f'preparation failed ({proc.returncode})')
  wall, busy = time.perf_counter() - t0, cpu_busy() - busy0
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  ours = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
  rec = json.loads(stdout.strip().splitlines()[-1])
  rec.update(foreign_cores=max(busy - ours, 0.0) / wall, rss_tree_peak_mb=peak_sum / 2**20,
             rss_process_peak_mb=peak_one / 2**20, cpu_s=ours, wall_s=wall)
  return rec


def shard_digest(directory: str) -> str:
  h = hashlib.sha256()
  for p in sorted(glob.glob(os.path.join(directory, 'shard-*'))):
    with open(p, 'rb') as f:
      h.update(os.path.basename(p).encode() + hashlib.file_digest(f, 'sha256').digest())
  return h.hexdigest()


def kill_resume(source, cache, chunk_mb, fresh_dir, timeout=3600):
  """Kills a 1-worker preparation (SIGKILL) once its first shard is finished, runs it again,
  and compares the shards with a fresh preparation's."""
  code = _CHILD.format(root=ROOT, source=source, cache=cache, workers=1, chunk_mb=chunk_mb)
  proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  t0 = time.perf_counter()
  while (not glob.glob(os.path.join(cache, 'prepared-*', 'shard-*.json'))
         and proc.poll() is None and time.perf_counter() - t0 < timeout):
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  done = len(glob.glob(os.path.join(cache, 'prepared-*', 'shard-*.json')))
  complete = bool(glob.glob(os.path.join(cache, 'prepared-*', 'index.json')))
  rec = run_child(source, cache, 1, chunk_mb)
  return {'shards_kept': done, 'killed_complete': complete, 'resume_prepare_s': rec['prepare_s'],
          'equal_to_fresh': shard_digest(rec['dir']) == shard_digest(fresh_dir)}


def loader_rate(source, cache, batches, document_mask):
  from lm_jax.config.defaults import base_config  # pylint: disable=g-import-not-at-top
  from lm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  c = base_config().data
  c.update(source=source, max_bytes=0, cache_dir=cache, seq_len=256, chunk_mb=ARGS.chunk_mb,
           document_mask=document_mask)
  data = pipeline.build_data(c, global_batch_size=8, run_dir=os.path.join(cache, 'run'))
  for _ in range(5):
    next(data.train_iter)
  t0 = time.perf_counter()
  for _ in range(batches):
    next(data.train_iter)
  return batches / (time.perf_counter() - t0)


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--sizes-mb', default='256,1024')
  p.add_argument('--workers', default='1,2')
  p.add_argument('--chunk-mb', type=int, default=64)
  p.add_argument('--dir', default='/tmp/bench_prepare')
  p.add_argument('--loader-batches', type=int, default=500)
  p.add_argument('--kill-resume', action='store_true')
  p.add_argument('--keep', action='store_true')
  p.add_argument('--out', default='')
  global ARGS
  ARGS = p.parse_args()
  sizes = [int(s) for s in ARGS.sizes_mb.split(',')]
  workers = [int(w) for w in ARGS.workers.split(',')]
  os.makedirs(ARGS.dir, exist_ok=True)
  meta = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
          'machine': f'{platform.node()} {platform.processor() or platform.machine()}, '
                     f'{os.cpu_count()} CPUs', 'python': platform.python_version()}
  records = []
  try:
    for size in sizes:
      source = os.path.join(ARGS.dir, f'corpus-{size}mb.jsonl')
      t0 = time.perf_counter()
      nbytes = generate(source, size)
      print(f'generated {nbytes / 1e6:.0f} MB in {time.perf_counter() - t0:.0f}s',
            file=sys.stderr)
      for rep, w in enumerate(workers):  # a repeated count is a rerun: its own cache
        cache = os.path.join(ARGS.dir, f'cache-{size}-{w}-{rep}')
        rec = run_child(source, cache, w, ARGS.chunk_mb)
        rec.update(meta, size_mb=nbytes / 1e6, workers=w, mb_s=nbytes / 1e6 / rec['prepare_s'])
        records.append(rec)
        print(f'{nbytes / 1e6:7.0f} MB  workers {w}  digest {rec["digest_s"]:5.1f}s  prepare '
              f'{rec["prepare_s"]:6.1f}s  {rec["mb_s"]:6.1f} MB/s  peak RSS all processes '
              f'{rec["rss_tree_peak_mb"]:.0f} MB, largest {rec["rss_process_peak_mb"]:.0f} MB  '
              f'CPU {rec["cpu_s"]:.0f}s  foreign '
              f'load {rec["foreign_cores"]:.2f} cores', flush=True)
      if ARGS.kill_resume and size == sizes[0]:
        fresh = next(r['dir'] for r in records if r['size_mb'] == nbytes / 1e6)
        kr = kill_resume(source, os.path.join(ARGS.dir, f'cache-{size}-killed'), ARGS.chunk_mb,
                         fresh)
        kr.update(meta, kind='kill_resume', size_mb=nbytes / 1e6)
        records.append(kr)
        print(f'kill/resume: {kr}', flush=True)
    largest = os.path.join(ARGS.dir, f'corpus-{sizes[-1]}mb.jsonl')
    cache = os.path.join(ARGS.dir, f'cache-{sizes[-1]}-{workers[-1]}-{len(workers) - 1}')
    for mask in (False, True):
      rate = loader_rate(largest, cache, ARGS.loader_batches, mask)
      records.append({**meta, 'kind': 'loader', 'document_mask': mask, 'batches_s': rate,
                      'batch': [8, 256]})
      print(f'loader (batch 8 x 256, document_mask={mask}): {rate:.0f} batches/s', flush=True)
  finally:
    if not ARGS.keep:
      shutil.rmtree(ARGS.dir, ignore_errors=True)
  if ARGS.out:
    append_jsonl(ARGS.out, records)


if __name__ == '__main__':
  main()
