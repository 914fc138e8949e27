"""experiments/repro/shakespeare_char/check.py: pass / fail against nanoGPT's published loss."""

import json

from experiments.repro.shakespeare_char import check


def _run_dir(tmp_path, rows):
  with open(tmp_path / 'metrics.jsonl', 'w') as f:
    for row in rows:
      f.write(json.dumps(row) + '\n')
  return str(tmp_path)


def test_pass_within_tolerance_and_fail_outside(tmp_path, capsys):
  run_dir = _run_dir(tmp_path, [{'step': 1000, 'eval/loss': 2.5},
                                {'step': 2000, 'train/loss': 1.7},
                                {'step': 2000, 'eval/loss': 1.8950}])
  assert check.check(run_dir, 'cpu', tolerance=0.02)
  assert 'PASS: val loss 1.8950 at step 2000, nanoGPT publishes 1.88' in capsys.readouterr().out
  assert not check.check(run_dir, 'cpu', tolerance=0.01)
  assert 'FAIL' in capsys.readouterr().out


def test_an_unfinished_run_fails(tmp_path, capsys):
  run_dir = _run_dir(tmp_path, [{'step': 1000, 'eval/loss': 2.5}])
  assert not check.check(run_dir, 'gpu', tolerance=0.02)
  assert 'no eval/loss at step 5000' in capsys.readouterr().out
