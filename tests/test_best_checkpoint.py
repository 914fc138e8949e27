"""Early stopping and the best checkpoint, end to end, on a corpus whose
validation loss falls and then rises.

The corpus: training bytes drawn i.i.d. with 'a' 80% of the time, validation
bytes uniform over a-z. Learning "only letters" first lowers the validation
loss; learning "mostly 'a'" then raises it, towards the cross entropy of the
uniform split under the training distribution. The expected steps and values
come from metrics.jsonl, the run's own log of every evaluation.
"""

import json
import os

import numpy as np
import pytest

from lm_jax.metrics.writers import read_jsonl
from tests.run_helpers import QUICK, run_cli, tiny_overrides

EVAL_EVERY, PATIENCE = 2, 3


def _write_corpus(path):
  rng = np.random.default_rng(0)
  letters = np.array(list('abcdefghijklmnopqrstuvwxyz'))
  p = np.full(26, 0.2 / 25)
  p[0] = 0.8
  text = ''.join(rng.choice(letters, 9000, p=p)) + ''.join(rng.choice(letters, 1000))
  path.write_text(text)


def _flags(tmp, steps, patience):
  return tiny_overrides(str(tmp / 'run'), steps, **{
      'data.source': str(tmp / 'corpus.txt'), 'train.eval_every': EVAL_EVERY,
      'train.early_stop_patience': patience, 'checkpoint.every': 0,
      'checkpoint.keep': 1, 'train.log_every': 10, 'optimizer.lr': 1e-2,
      'optimizer.schedule': 'constant'})


def _evals(run_dir):
  return {r['step']: r['eval/loss'] for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
          if 'eval/loss' in r}


def _steps(run_dir):
  return sorted(int(s) for s in os.listdir(os.path.join(run_dir, 'checkpoints')) if s.isdigit())


def _expected_stop(evals):
  """The first evaluation that ends PATIENCE in a row not below the best before them."""
  best, stale = float('inf'), 0
  for step in sorted(evals):
    best, stale = (evals[step], 0) if evals[step] < best else (best, stale + 1)
    if stale == PATIENCE:
      return step
  return None


@pytest.fixture(scope='module')
def stopped_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('best')
  _write_corpus(tmp / 'corpus.txt')
  done = run_cli('train', '--config', QUICK, *_flags(tmp, 40, PATIENCE))
  assert done.returncode == 0, done.stderr
  return tmp, done


def test_early_stopping_stops_and_saves_where_patience_runs_out(stopped_run):
  tmp, done = stopped_run
  run_dir = str(tmp / 'run')
  evals = _evals(run_dir)
  stop = _expected_stop(evals)
  assert stop is not None and stop < 40, evals  # the corpus does what it should
  assert max(evals) == stop  # no evaluation after the stop
  assert f'early stopping: eval/loss has not improved by more than 0 for {PATIENCE} ' \
         f'evaluations' in done.stderr
  assert f'stopped early at step {stop}: early stopping' in done.stderr
  result = json.loads(done.stdout[done.stdout.rindex('{\n'):])  # after the metric lines
  assert result['early_stopped'] and result['step'] == stop
  assert _steps(run_dir)[-1] == stop  # the final checkpoint is the stop step's


def test_best_checkpoint_is_kept_beside_keep_1_and_eval_step_best_reports_it(stopped_run):
  tmp, _ = stopped_run
  run_dir = str(tmp / 'run')
  evals = _evals(run_dir)
  best = min(evals, key=evals.get)
  assert best < max(evals)  # the loss did get worse after the best
  assert _steps(run_dir) == [best, max(evals)]  # keep=1, plus the best

  done = run_cli('eval', '--config', QUICK, *_flags(tmp, 40, PATIENCE), '--step', 'best')
  assert done.returncode == 0, done.stderr
  result = json.loads(done.stdout)
  assert result['step'] == best
  assert result['loss'] == pytest.approx(evals[best], rel=1e-6)


@pytest.mark.slow  # ~50 s quiet: two more runs; stopping itself is checked by the test above
def test_a_stopped_run_stays_stopped_and_a_resumed_one_still_keeps_the_best(stopped_run):
  tmp, first = stopped_run
  run_dir = str(tmp / 'run')
  evals = _evals(run_dir)
  best, stop = min(evals, key=evals.get), max(evals)

  again = run_cli('train', '--config', QUICK, *_flags(tmp, 40, PATIENCE))
  assert again.returncode == 0, again.stderr
  assert f'the run had stopped at step {stop}' in again.stderr
  assert _steps(run_dir) == [best, stop]

  # Early stopping off and 6 more steps: the best is found in the restored
  # checkpoint, so keep=1 still spares it when the new last step is saved.
  more = run_cli('train', '--config', QUICK, *_flags(tmp, stop + 6, 0))
  assert more.returncode == 0, more.stderr
  assert f'resumed from step {stop}' in more.stderr
  evals = _evals(run_dir)
  assert max(evals) == stop + 6
  best = min(evals, key=evals.get)
  assert _steps(run_dir) == sorted({best, stop + 6})
  done = run_cli('eval', '--config', QUICK, *_flags(tmp, stop + 6, 0), '--step', 'best')
  assert done.returncode == 0, done.stderr
  assert json.loads(done.stdout)['step'] == best
