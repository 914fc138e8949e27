"""A prepared document corpus (a JSONL + Parquet mixture, whole-document splits, document
masks) on 2 processes x 4 devices trains the same steps as 1 process x 8, and a 2-process
run killed after its checkpoint resumes onto the same losses. Process 1 waits for process
0's preparation. Slow: 5 CPU training processes."""

import json
import os

import pytest

from tests.run_helpers import QUICK
from tests.test_multiprocess import (LIMIT_S, _dist_flags, _finish, _flags, _free_port,
                                     _start, _train_losses)

N = 3


def _sources(base):
  import pyarrow as pa
  import pyarrow.parquet as pq
  with open(base / 'web.jsonl', 'w', encoding='utf-8') as f:
    for i in range(600):
      f.write(json.dumps({'text': f'page {i}: ' + 'the cat sat on the mat. ' * (i % 7 + 1)})
              + '\n')
  pq.write_table(pa.table({'text': [f'def f{i}(x):\n    return x * {i}\n' * (i % 5 + 1)
                                    for i in range(600)]}), str(base / 'code.parquet'),
                 row_group_size=100)
  return f'{base / "web.jsonl"}:0.6,{base / "code.parquet"}:0.4'


@pytest.mark.slow
def test_prepared_mixture_two_processes_match_one_and_resume(tmp_path):
  mix = _sources(tmp_path)
  data = {'data.mixture': mix, 'data.split_by': 'document', 'data.document_mask': True,
          'data.drop_boundary_loss': True, 'data.max_bytes': 0,
          'optimizer.decay_steps': 2 * N}  # the stopped run's schedule is the full run's
  ref_dir, mp_dir = str(tmp_path / 'ref' / 'run'), str(tmp_path / 'mp' / 'run')
  port = _free_port()
  ref = _start(['train', '--config', QUICK, *_flags(ref_dir, **data)], str(tmp_path / 'ref'), 8)
  # The 2-process run stops after its first checkpoint (step N), as if killed there.
  first = [_start(['train', '--config', QUICK, *_flags(mp_dir, **data),
                   f'--config.train.steps={N}', *_dist_flags(port, 2, i, 4)],
                  str(tmp_path / f'mp{i}'), 4) for i in range(2)]
  for rc, _, err in [_finish(p) for p in [ref, *first]]:
    assert rc == 0, err[-4000:]
  port = _free_port()
  second = [_start(['train', '--config', QUICK, *_flags(mp_dir, **data),
                    *_dist_flags(port, 2, i, 4)], str(tmp_path / f'mp{i}b'), 4)
            for i in range(2)]
  for rc, _, err in [_finish(p, LIMIT_S) for p in second]:
    assert rc == 0, err[-4000:]
  want, steps = _train_losses(ref_dir)
  got, got_steps = _train_losses(mp_dir)
  assert steps == list(range(1, 2 * N + 1)) and sorted(set(got_steps)) == steps
  for step in steps:
    assert got[step] == pytest.approx(want[step], rel=1e-5), step
