"""experiments/prepared_corpus_e2e.py on a tiny corpus: prepared, trained on 1 process and on
2, SIGKILLed after the middle checkpoint, restarted, and its losses equal to the
uninterrupted runs'. Slow: 9 CPU processes (~4 min on the 2-core VM)."""

import json
import os
import subprocess
import sys

import pytest

from tests.run_helpers import ROOT

SCRIPT = os.path.join(ROOT, 'experiments', 'prepared_corpus_e2e.py')


@pytest.mark.slow
def test_tiny_corpus_prepares_trains_and_resumes_exactly_after_sigkill(tmp_path):
  out = tmp_path / 'records.jsonl'
  proc = subprocess.run(
      [sys.executable, SCRIPT, '--size-mb', '2', '--baseline-mb', '2', '--steps', '8',
       '--every', '2', '--kill-at', '4', '--limit-s', '600', '--dir', str(tmp_path / 'e2e'),
       '--out', str(out)],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
      timeout=1800)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
  checks = [r for r in map(json.loads, out.read_text().splitlines()) if r['kind'] == 'check']
  assert all(c['ok'] for c in checks)
  names = ' | '.join(c['check'] for c in checks)
  for part in ('peak RSS bounded', '1 process x 4 devices: restart resumed from step 4',
               '1 process x 4 devices: resumed losses = reference',
               '2 processes x 2 devices: killed after the step-4 checkpoint',
               '2 processes x 2 devices: resumed losses = reference',
               '2-process reference = 1-process reference', 'reused the preparation'):
    assert part in names, (part, names)
  killed = [c for c in checks if 'killed after' in c['check']]
  # The kill landed while training ran: both processes alive, step 4 the newest checkpoint.
  assert all(c['all_running'] and c['checkpoints_at_kill'][-1] == 4 for c in killed)
  assert not os.path.exists(tmp_path / 'e2e')  # deleted without --keep
