"""End to end on a generated JSONL corpus: prepare with bounded memory, train, SIGKILL, resume.

    nice -n 10 python experiments/prepared_corpus_e2e.py [--size-mb 1024] [--steps 40]
        [--every 10] [--kill-at 20] [--dir /tmp/prepared_e2e] [--keep] [--out r.jsonl]

1. A JSONL corpus of --size-mb MB (experiments/bench_prepare.generate) under --dir, and a
   smaller one of --baseline-mb MB.
2. `lm-jax prepare` of each (byte tokenizer, eos separators, data.split_by=document,
   data.document_mask=True, data.max_bytes=0, data.prepare_workers=2), in its own process
   tree, its RSS summed over the tree and sampled every 0.1 s from /proc
   (bench_prepare._tree_rss), and timed (wall, from process start: JAX import and hashing
   included). Bounded memory: the big corpus's peak is under --rss-limit-mb and within 1.5x
   (+ 50 MB) of the small one's.
3. One process x 4 CPU devices, configs/quickstart.py on the big preparation (its model
   as is; warmup --steps // 4, no evaluation): a reference run of --steps steps with a
   checkpoint every --every, and a second run with the same command, SIGKILLed (the process
   group of its `timeout` wrapper) as soon as checkpoints/<--kill-at> is complete, then
   started again with the same command. Orbax writes a step into
   `<step>.orbax-checkpoint-tmp` and renames it when finished (commit_success.txt inside),
   so the final name is the completion mark. The restart must log `resumed from step
   <kill-at>`, its saved iterator position must be batch <kill-at> (a restart at batch 0
   would feed other batches, and the losses after the kill would differ), and its
   metrics.jsonl losses (steps 1..S, once each) must equal the reference's: bit-equal, or
   within rel 1e-6 (which held is printed).
4. Two processes x 2 CPU devices (jax.distributed on 127.0.0.1, every process under
   `timeout`): the same, both processes SIGKILLed after the checkpoint. The 2-process
   reference against the 1-process one (same 4-device data mesh, same global batch):
   rel 1e-5.
5. The preparation is reused: no training run writes a preparation (the prepared-* files,
   names, sizes and mtimes, are unchanged; still one prepared-* directory).

A PASS/FAIL line per check; every record (runs, checks) as JSON lines appended to --out;
exit status 1 on any FAIL. --dir is deleted afterwards unless --keep (the generated
corpus is then reused by the next run; caches and runs are always made afresh).
"""

import argparse
import contextlib
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_prepare import _tree_rss, append_jsonl, generate  # pylint: disable=g-import-not-at-top,wrong-import-position
from lm_jax.metrics.writers import read_jsonl  # pylint: disable=g-import-not-at-top,wrong-import-position

CONFIG = os.path.join(ROOT, 'configs', 'quickstart.py')
DEVICES = 4  # global: 1 process x 4, or 2 processes x 2
RESUME_RTOL = 1e-6
# 2 processes (gloo all-reduce) against 1 (in-process): other summation orders, so the losses
# drift apart over the steps; measured at 1 GB (docs/data.md): <= 6e-7 through step 36, then a
# gradient-norm spike at step 37 (2.68 against 4.70, clipped at 1.0) takes it to 7.5e-5 by 40.
# Another batch would move the loss by ~1e-2.
PROCESSES_RTOL = 1e-5   # through --kill-at
PROCESSES_RTOL_ALL = 1e-3  # every step


def data_flags(source, cache):
  return [f'--config.data.{k}={v}' for k, v in dict(
      source=source, cache_dir=cache, tokenizer='byte', separator='eos', split_by='document',
      document_mask=True, max_bytes=0, prepare_workers=2).items()]


def train_flags(args, source, cache, run_dir):
  flags = {'logging.run_dir': run_dir, 'train.steps': args.steps,
           'checkpoint.every': args.every, 'train.log_every': 1, 'train.eval_every': 0,
           'optimizer.warmup_steps': max(1, args.steps // 4), 'logging.progress': False,
           'logging.tensorboard': False}
  return ['train', '--config', CONFIG, *data_flags(source, cache),
          *[f'--config.{k}={v}' for k, v in flags.items()]]


def dist_flags(port, n, i, devices, timeout):
  return [f'--config.distributed.coordinator_address=127.0.0.1:{port}',
          f'--config.distributed.num_processes={n}', f'--config.distributed.process_id={i}',
          f'--config.distributed.local_device_count={devices}',
          f'--config.distributed.initialization_timeout={timeout}']


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def start(cli_args, log, devices, limit):
  """`lm-jax CLI_ARGS` under `timeout` (its own process group), output to log.{out,err}."""
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT,
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  out, err = open(log + '.out', 'w'), open(log + '.err', 'w')
  proc = subprocess.Popen(['timeout', '-k', '10', str(limit), sys.executable, '-m',
                           'lm_jax.cli', *cli_args], env=env, cwd=ROOT, stdout=out, stderr=err)
  proc.log, proc.files, proc.t0 = log, (out, err), time.perf_counter()
  return proc


def kill(procs):
  for p in procs:  # timeout is its group's leader: this kills the trainer under it
    with contextlib.suppress(ProcessLookupError):  # that group has already exited
      os.killpg(p.pid, signal.SIGKILL)
  for p in procs:
    p.wait()


def watch(procs, until=None):
  """Waits for `procs`, sampling their trees' summed RSS every 0.1 s; with `until`, SIGKILLs
  every process group as soon as until() holds (polled every 0.02 s). Returns (peak RSS
  bytes, whether every process was still running when killed; None if not killed). A
  failed process ends the others (a peer would wait for it until its timeout)."""
  peak, last = 0, 0.0
  try:
    while any(p.poll() is None for p in procs):
      now = time.perf_counter()
      if now - last >= 0.1:
        peak, last = max(peak, sum(_tree_rss(p.pid)[0] for p in procs)), now
      if until is not None and until():
        alive = all(p.poll() is None for p in procs)
        kill(procs)
        return peak, alive
      if any(p.poll() for p in procs):
        break
      time.sleep(0.02)
  finally:
    kill([p for p in procs if p.poll() is None])
  return peak, None


def finish(proc):
  """(returncode, stdout, stderr, wall seconds) of a process that has exited."""
  proc.wait()
  for f in proc.files:
    f.close()
  texts = []
  for suffix in ('.out', '.err'):
    with open(proc.log + suffix, encoding='utf-8', errors='replace') as f:
      texts.append(f.read())
  return proc.returncode, texts[0], texts[1], time.perf_counter() - proc.t0


def run_all(procs, what, records, until=None):
  """Runs `procs` to their end (or to the kill); one record; raises if one failed."""
  peak, killed_alive = watch(procs, until)
  results = [finish(p) for p in procs]
  rec = {'kind': 'run', 'what': what, 'rss_tree_peak_mb': peak / 2**20,
         'wall_s': max(r[3] for r in results), 'returncodes': [r[0] for r in results],
         'load_avg_1min_after': os.getloadavg()[0]}
  if until is not None:
    rec['killed_alive'] = killed_alive
  records.append(rec)
  print(f'  {what}: {rec["wall_s"]:.0f}s, peak RSS {rec["rss_tree_peak_mb"]:.0f} MB, load '
        f'average {rec["load_avg_1min_after"]:.1f}'
        + (f', killed (all running: {killed_alive})' if until is not None else ''), flush=True)
  failed = [r for r in results if r[0] != 0]
  if failed and (until is None or killed_alive is None):
    rc, _, err, _ = min(failed, key=lambda r: r[0] == -signal.SIGKILL)  # not a killed peer
    raise RuntimeError(f'{what} failed ({rc}):\n{err[-4000:]}')
  return results


def train_losses(run_dir):
  """({step: train/loss}, the logged steps in order) from metrics.jsonl."""
  rows = [r for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl')) if 'train/loss' in r]
  return {r['step']: r['train/loss'] for r in rows}, [r['step'] for r in rows]


def compare(want, got, steps):
  """Max relative difference and bit-equal count of `got` against `want` over `steps`."""
  missing = [s for s in steps if s not in want or s not in got]
  common = [s for s in steps if s in want and s in got]
  rel = [abs(got[s] - want[s]) / max(abs(want[s]), 1e-30) for s in common]
  return {'max_rel_diff': max(rel, default=float('inf')), 'missing_steps': missing,
          'bit_equal_steps': sum(got[s] == want[s] for s in common), 'steps': len(steps)}


def checkpoint_done(run_dir, step):
  path = os.path.join(run_dir, 'checkpoints', str(step))
  return os.path.isfile(os.path.join(path, 'commit_success.txt'))


def checkpoint_steps(run_dir):
  folder = os.path.join(run_dir, 'checkpoints')
  return sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []


def saved_next_batch(run_dir, step):
  with open(os.path.join(run_dir, 'checkpoints', str(step), 'data_iter', 'metadata'),
            encoding='utf-8') as f:
    return json.load(f).get('next_index')


def prepared_files(cache):
  """{path: (size, mtime_ns)} of every file of every preparation under `cache`."""
  return {p: (os.stat(p).st_size, os.stat(p).st_mtime_ns)
          for p in glob.glob(os.path.join(cache, 'prepared-*', '**'), recursive=True)
          if os.path.isfile(p)}


class Checks:
  """PASS/FAIL lines and records."""

  def __init__(self, records):
    self.records, self.failed = records, 0

  def __call__(self, name, ok, **numbers):
    self.failed += not ok
    self.records.append({'kind': 'check', 'check': name, 'ok': bool(ok), **numbers})
    shown = ', '.join(f'{k}={v:.3g}' if isinstance(v, float) else f'{k}={v}'
                      for k, v in numbers.items())
    print(f'{"PASS" if ok else "FAIL"} {name}: {shown}', flush=True)


def prepare(source, cache, log, limit, records, name):
  what = f'prepare {name} ({os.path.getsize(source) / 1e6:.0f} MB)'
  proc = start(['prepare', '--config', CONFIG, *data_flags(source, cache),
                f'--config.logging.run_dir={log}-run'], log, 1, limit)
  (_, out, err, wall), = run_all([proc], what, records)
  rates = re.findall(r'([\d.]+) MB/s', err)
  mb = os.path.getsize(source) / 1e6
  info = json.loads(out[out.index('{'):])
  records[-1].update(size_mb=mb, mb_s=mb / wall, progress_mb_s=float(rates[-1]) if rates
                     else None, train_tokens=info['train_tokens'], tokens_dir=info['tokens'])
  return records[-1]


def one_kill(args, make, name, slug, records, check):
  """The reference run and the killed-and-restarted run; checks; returns the reference losses.
  make(run_dir, log) -> the processes of one run (a fresh port each call)."""
  base = os.path.join(args.dir, 'runs', slug)
  os.makedirs(base)
  ref_dir, kill_dir = os.path.join(base, 'reference'), os.path.join(base, 'killed')
  run_all(make(ref_dir, os.path.join(base, 'reference')), f'{name} reference', records)
  run_all(make(kill_dir, os.path.join(base, 'first')), f'{name} killed',
          records, until=lambda: checkpoint_done(kill_dir, args.kill_at))
  alive = records[-1]['killed_alive']
  at_kill = checkpoint_steps(kill_dir)
  _, logged = train_losses(kill_dir)
  logged_at_kill = max(logged, default=0)
  results = run_all(make(kill_dir, os.path.join(base, 'restart')), f'{name} restart', records)
  resumed = re.findall(r'resumed from step (\d+)', results[0][2])
  want, steps = train_losses(ref_dir)
  got, got_steps = train_losses(kill_dir)
  every = list(range(1, args.steps + 1))
  records.append({'kind': 'losses', 'what': name, 'reference': want, 'killed_resumed': got})
  check(f'{name}: killed after the step-{args.kill_at} checkpoint',
        alive is True and max(at_kill, default=0) == args.kill_at,
        checkpoints_at_kill=at_kill, last_logged_step_at_kill=logged_at_kill,
        all_running=alive)
  nxt = saved_next_batch(kill_dir, args.kill_at)
  check(f'{name}: restart resumed from step {args.kill_at}, iterator at batch {args.kill_at}',
        resumed == [str(args.kill_at)] and nxt == args.kill_at,
        resumed_from=resumed, saved_next_batch=nxt)
  cmp = compare(want, got, every)
  bit = cmp['bit_equal_steps'] == len(every)
  check(f'{name}: resumed losses = reference, steps 1..{args.steps} '
        f'({"bit-equal" if bit else f"rel {RESUME_RTOL:g}"})',
        steps == every and got_steps == every and cmp['max_rel_diff'] <= RESUME_RTOL,
        max_rel_diff=cmp['max_rel_diff'], bit_equal_steps=cmp['bit_equal_steps'],
        of=len(every), logged_once=got_steps == every)
  return want


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--size-mb', type=int, default=1024)
  p.add_argument('--baseline-mb', type=int, default=160,
                 help='smaller corpus for the RSS check (default: 2.5 chunks of 64 MB)')
  p.add_argument('--rss-limit-mb', type=float, default=600)
  p.add_argument('--steps', type=int, default=40)
  p.add_argument('--every', type=int, default=10, help='checkpoint every N steps')
  p.add_argument('--kill-at', type=int, default=20, help='SIGKILL after this checkpoint')
  p.add_argument('--limit-s', type=int, default=1800, help='timeout per process')
  p.add_argument('--dir', default='/tmp/prepared_e2e')
  p.add_argument('--keep', action='store_true')
  p.add_argument('--out', default='')
  args = p.parse_args()
  if args.kill_at % args.every or not 0 < args.kill_at < args.steps:
    p.error(f'--kill-at {args.kill_at}: give a checkpoint step (a multiple of --every '
            f'{args.every}) below --steps {args.steps}')
  meta = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
          'machine': f'{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs',
          'python': platform.python_version(), 'argv': sys.argv[1:]}
  records = []
  check = Checks(records)
  os.makedirs(args.dir, exist_ok=True)
  for stale in ('cache', 'cache-baseline', 'runs', 'logs'):
    shutil.rmtree(os.path.join(args.dir, stale), ignore_errors=True)
  os.makedirs(os.path.join(args.dir, 'logs'))
  logs = os.path.join(args.dir, 'logs')
  try:
    corpora = {}
    for mb in (args.baseline_mb, args.size_mb):
      path = os.path.join(args.dir, f'corpus-{mb}mb.jsonl')
      if not os.path.exists(path + '.done'):
        t0 = time.perf_counter()
        generate(path, mb)
        open(path + '.done', 'w').close()
        print(f'generated {os.path.getsize(path) / 1e6:.0f} MB in '
              f'{time.perf_counter() - t0:.0f}s', flush=True)
      corpora[mb] = path
    source, cache = corpora[args.size_mb], os.path.join(args.dir, 'cache')
    small = prepare(corpora[args.baseline_mb], os.path.join(args.dir, 'cache-baseline'),
                    os.path.join(logs, 'prepare-baseline'), args.limit_s, records, 'baseline')
    big = prepare(source, cache, os.path.join(logs, 'prepare'), args.limit_s, records, 'corpus')
    peak, base_peak = big['rss_tree_peak_mb'], small['rss_tree_peak_mb']
    check(f'prepare {big["size_mb"]:.0f} MB: peak RSS bounded',
          peak < args.rss_limit_mb and peak <= 1.5 * base_peak + 50,
          rss_peak_mb=peak, limit_mb=args.rss_limit_mb,
          baseline_rss_peak_mb=base_peak, baseline_mb=small['size_mb'],
          prepare_s=big['wall_s'], mb_s=big['mb_s'], progress_mb_s=big['progress_mb_s'])
    before = prepared_files(cache)

    def one_process(run_dir, log):
      return [start(train_flags(args, source, cache, run_dir), log, DEVICES, args.limit_s)]

    def two_processes(run_dir, log):
      port = free_port()
      return [start(train_flags(args, source, cache, run_dir)
                    + dist_flags(port, 2, i, DEVICES // 2, args.limit_s), f'{log}-{i}',
                    DEVICES // 2, args.limit_s) for i in range(2)]

    ref1 = one_kill(args, one_process, '1 process x 4 devices', '1proc', records, check)
    ref2 = one_kill(args, two_processes, '2 processes x 2 devices', '2proc', records, check)
    cmp = compare(ref1, ref2, list(range(1, args.steps + 1)))
    records.append({'kind': 'losses', 'what': '2-process / 1-process reference, rel diff',
                    'rel_diff': {s: abs(ref2[s] - ref1[s]) / abs(ref1[s])
                                 for s in ref1 if s in ref2}})
    early = compare(ref1, ref2, list(range(1, args.kill_at + 1)))
    over = [s for s in range(1, args.steps + 1)
            if s in ref1 and s in ref2 and abs(ref2[s] - ref1[s]) > PROCESSES_RTOL * abs(ref1[s])]
    check(f'2-process reference = 1-process reference (rel {PROCESSES_RTOL:g} through step '
          f'{args.kill_at}, {PROCESSES_RTOL_ALL:g} to {args.steps})',
          not cmp['missing_steps'] and early['max_rel_diff'] <= PROCESSES_RTOL
          and cmp['max_rel_diff'] <= PROCESSES_RTOL_ALL,
          max_rel_diff_to_kill=early['max_rel_diff'], max_rel_diff=cmp['max_rel_diff'],
          first_step_over_rtol=over[0] if over else None,
          bit_equal_steps=cmp['bit_equal_steps'], of=cmp['steps'])
    after = prepared_files(cache)
    dirs = glob.glob(os.path.join(cache, 'prepared-*'))
    check('training reused the preparation (no prepared file written)',
          after == before and len(dirs) == 1, prepared_dirs=len(dirs), files=len(after),
          changed=sorted(set(before.items()) ^ set(after.items()))[:5])
  except Exception as e:  # pylint: disable=broad-except
    check('run', False, error=str(e)[-2000:])
  finally:
    if args.out:
      append_jsonl(args.out, [{**meta, **r} for r in records])
    if not args.keep:
      shutil.rmtree(args.dir, ignore_errors=True)
  print(f'{"FAIL" if check.failed else "PASS"}: {check.failed} of '
        f'{sum(r["kind"] == "check" for r in records)} checks failed', flush=True)
  sys.exit(1 if check.failed else 0)


if __name__ == '__main__':
  main()
