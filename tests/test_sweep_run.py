"""`lm-jax sweep` end to end: a 2x2 grid of tiny runs plus one bad run, 2 at a time, then again."""

import csv
import json
import math
import os
import subprocess
import textwrap

import pytest

from lm_jax.metrics.writers import read_jsonl
from tests.run_helpers import ROOT, cli_env, lm_jax_cmd

GOOD = ['lr=0.001,d_model=32', 'lr=0.001,d_model=64', 'lr=0.003,d_model=32',
        'lr=0.003,d_model=64']
BAD = 'lr=0.001,num_heads=3'  # d_model 32 does not split into 3 heads: the run exits 2
SWEEP = '''
from lm_jax.sweep import Sweep, grid

def get_sweep():
  return Sweep(name='tiny', config='configs/quickstart.py:runlocal', root={root!r},
               # the bad run first: it fails in seconds and frees its slot
               runs=[{{'optimizer.lr': 0.001, 'model.num_heads': 3}}]
                    + grid({{'optimizer.lr': [0.001, 0.003], 'model.d_model': [32, 64]}}),
               fixed={{'train.steps': 4, 'train.eval_every': 4, 'checkpoint.every': 4}})
'''


def _sweep(path):
  return subprocess.run(lm_jax_cmd('sweep', path, '--parallel', '2'), env=cli_env(1), cwd=ROOT,
                        capture_output=True, text=True, timeout=900)


@pytest.fixture(scope='module')
def swept(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('sweep')
  path = tmp / 'tiny_sweep.py'
  path.write_text(textwrap.dedent(SWEEP.format(root=str(tmp / 'runs'))))
  first = _sweep(str(path))
  return str(path), str(tmp / 'runs' / 'tiny'), first


def test_one_command_runs_the_grid_and_reports_the_bad_run(swept):
  _, directory, first = swept
  assert first.returncode == 1, first.stdout + first.stderr  # one run failed
  out = first.stdout
  for name in GOOD:
    assert f'] done    {name} (' in out, out
  log = os.path.join(directory, BAD, 'sweep_stderr.log')
  assert f'FAILED  {BAD}: exit code 2 after' in out and f'log {log}' in out
  # the tail of its stderr, with the validation message
  assert '| error: config.model.d_model=32: not divisible by config.model.num_heads=3' in out
  assert 'sweep tiny: 4 done, 1 failed' in out


def test_results_table_holds_each_runs_final_metrics(swept):
  _, directory, _ = swept
  with open(os.path.join(directory, 'results.csv')) as f:
    rows = {row['run']: row for row in csv.DictReader(f)}
  assert sorted(rows) == sorted(GOOD + [BAD])
  assert rows[BAD]['state'] == 'failed' and rows[BAD]['eval/loss'] == ''
  for name in GOOD:
    records = [json.loads(line) for line in open(os.path.join(directory, name, 'metrics.jsonl'))]
    last_eval = [r['eval/loss'] for r in records if 'eval/loss' in r][-1]
    row = rows[name]
    assert row['state'] == 'done' and row['step'] == '4'
    assert math.isclose(float(row['eval/loss']), last_eval, rel_tol=1e-12)
    lr, width = name.split(',')
    assert (row['lr'], row['d_model']) == (lr.split('=')[1], width.split('=')[1])
  md = open(os.path.join(directory, 'results.md')).read().splitlines()
  assert md[0] == ('| run | lr | num_heads | d_model | state | step | train/loss | eval/loss '
                   '| eval/bits_per_byte |')
  assert len(md) == 2 + 5
  for png in ('loss_curves.png', 'final_vs_lr.png', 'final_vs_d_model.png'):
    with open(os.path.join(directory, png), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_rerun_skips_finished_runs_and_retries_the_failed_one(swept):
  path, directory, _ = swept
  before = {n: os.path.getsize(os.path.join(directory, n, 'metrics.jsonl')) for n in GOOD}
  again = _sweep(path)
  assert again.returncode == 1
  assert '4 of 5 runs already done; running 1, 1 at a time' in again.stdout
  assert f'[1/1] start   {BAD}' in again.stdout
  assert all(f'start   {n}' not in again.stdout for n in GOOD)
  after = {n: os.path.getsize(os.path.join(directory, n, 'metrics.jsonl')) for n in GOOD}
  assert after == before
  steps = [r['step'] for r in read_jsonl(os.path.join(directory, GOOD[0], 'metrics.jsonl'))]
  assert max(steps) == 4
