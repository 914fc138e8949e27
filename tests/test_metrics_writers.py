"""Tests for lm_jax/metrics/writers.py and progress.py: stdout, JSONL, TensorBoard, progress."""

import glob
import io
import json
import math
import os
import struct

import numpy as np
import pytest
from tensorboardX.crc32c import crc32c
from tensorboardX.proto import event_pb2

from lm_jax.metrics import progress
from lm_jax.metrics import writers


def read_events(logdir):
  """All Event protos in a TensorBoard logdir (TFRecord framing parsed by hand).

  A record is: uint64 length, uint32 masked crc32c of the length, `length`
  bytes, uint32 masked crc32c of the data. Both CRCs are checked.
  """
  def masked_crc(b):
    crc = crc32c(b)
    return (((crc >> 15) | (crc << 17)) + 0xa282ead8) & 0xffffffff

  events = []
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      header = data[pos:pos + 8]
      (length,) = struct.unpack('<Q', header)
      (length_crc,) = struct.unpack('<I', data[pos + 8:pos + 12])
      body = data[pos + 12:pos + 12 + length]
      (body_crc,) = struct.unpack('<I', data[pos + 12 + length:pos + 16 + length])
      assert length_crc == masked_crc(header) and body_crc == masked_crc(body), path
      events.append(event_pb2.Event.FromString(body))
      pos += 16 + length
    assert pos == len(data), path
  return events


def scalars(events):
  """{tag: [(step, value), ...]} from the scalar summaries in `events`."""
  out = {}
  for e in events:
    for v in e.summary.value:
      if v.HasField('simple_value'):
        out.setdefault(v.tag, []).append((e.step, v.simple_value))
  return out


def strip_time(records):
  for r in records:
    assert isinstance(r.pop('time'), float)
  return records


def test_jsonl_content_and_types(tmp_path):
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False,
                             stream=io.StringIO()) as w:
    w.write(10, {'loss': 2.5, 'tokens_per_s': np.float32(1950.0), 'tokens': np.int64(4096)})
    w.write(20, {'loss': 2.25}, prefix='eval')
    w.write(30, {'lr': 3e-4}, prefix='')
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  assert len(lines) == 3
  assert all(isinstance(json.loads(line), dict) for line in lines)
  assert strip_time(writers.read_jsonl(tmp_path / 'metrics.jsonl')) == [
      {'step': 10, 'train/loss': 2.5, 'train/tokens_per_s': 1950.0, 'train/tokens': 4096},
      {'step': 20, 'eval/loss': 2.25},
      {'step': 30, 'lr': 3e-4},
  ]
  assert isinstance(json.loads(lines[0])['train/tokens'], int)


def test_jax_values_are_converted(tmp_path):
  import jax.numpy as jnp
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False,
                             stream=io.StringIO()) as w:
    w.write(np.int32(5), {'loss': jnp.float32(1.5), 'n': jnp.array(7, jnp.int32),
                          'one': jnp.ones((1,), jnp.bfloat16)})
  assert strip_time(writers.read_jsonl(tmp_path / 'metrics.jsonl')) == [
      {'step': 5, 'train/loss': 1.5, 'train/n': 7, 'train/one': 1.0}]


def test_non_scalar_is_an_error(tmp_path):
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False,
                             stream=io.StringIO()) as w:
    with pytest.raises(ValueError, match='scalar'):
      w.write(1, {'x': np.zeros(3)})


def test_append_on_resume(tmp_path):
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False,
                             stream=io.StringIO()) as w:
    w.write(1, {'loss': 3.0})
    w.write(2, {'loss': 2.0})
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False,
                             stream=io.StringIO()) as w:
    w.write(3, {'loss': 1.0})
  assert strip_time(writers.read_jsonl(tmp_path / 'metrics.jsonl')) == [
      {'step': 1, 'train/loss': 3.0},
      {'step': 2, 'train/loss': 2.0},
      {'step': 3, 'train/loss': 1.0},
  ]


def test_purge_step_drops_lines_after_checkpoint(tmp_path):
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False,
                             stream=io.StringIO()) as w:
    for step in (1, 2, 3, 4):
      w.write(step, {'loss': float(step)})
  # Checkpoint at step 2; the crashed run's steps 3 and 4 are replayed.
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False,
                             purge_step=3, stream=io.StringIO()) as w:
    w.write(3, {'loss': 30.0})
  assert [(r['step'], r['train/loss']) for r in writers.read_jsonl(tmp_path / 'metrics.jsonl')
         ] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_non_finite_values(tmp_path):
  out = io.StringIO()
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=True, stream=out) as w:
    w.write(7, {'loss': float('nan'), 'grad_norm': np.float32(np.inf), 'x': -math.inf})
  line = (tmp_path / 'metrics.jsonl').read_text().strip()
  raw = json.loads(line)  # strict JSON: no bare NaN / Infinity
  assert 'NaN' not in line and 'Infinity' not in line
  assert (raw['train/loss'], raw['train/grad_norm'], raw['train/x']) == ('nan', 'inf', '-inf')
  (record,) = writers.read_jsonl(tmp_path / 'metrics.jsonl')
  assert math.isnan(record['train/loss'])
  assert record['train/grad_norm'] == math.inf and record['train/x'] == -math.inf
  assert out.getvalue() == 'step 7 | train/loss nan | train/grad_norm inf | train/x -inf\n'
  tb = scalars(read_events(tmp_path / 'tensorboard'))
  assert math.isnan(tb['train/loss'][0][1]) and tb['train/grad_norm'] == [(7, math.inf)]


def test_console_line(tmp_path):
  out = io.StringIO()
  with writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False, jsonl=False,
                             stream=out) as w:
    w.write(100, {'loss': 2.34123, 'tokens_per_s': 1953.2, 'lr': 3e-4, 'zero': 0.0,
                  'tokens': 409600})
  assert out.getvalue() == ('step 100 | train/loss 2.3412 | train/tokens_per_s 1.95e3 | '
                            'train/lr 3.00e-4 | train/zero 0 | train/tokens 409600\n')
  assert not (tmp_path / 'metrics.jsonl').exists()


@pytest.mark.parametrize('value,text', [
    (2.34123, '2.3412'), (-0.5, '-0.5000'), (1953.2, '1.95e3'), (1.5e-5, '1.50e-5'),
    (0.0, '0'), (7, '7'), (float('nan'), 'nan'), (float('-inf'), '-inf'), (123456.0, '1.23e5'),
])
def test_format_number(value, text):
  assert writers.format_number(value) == text


def test_tensorboard_scalars_and_text(tmp_path):
  with writers.MetricsWriter(tmp_path, is_primary=True, stream=io.StringIO()) as w:
    w.write(1, {'loss': 3.0, 'tokens_per_s': 100.0})
    w.write(2, {'loss': 2.5})
    w.write(2, {'loss': 2.75}, prefix='eval')
    w.write_text('config', 'model:\n  d_model: 128\n')
  events = read_events(tmp_path / 'tensorboard')
  assert scalars(events) == {
      'train/loss': [(1, 3.0), (2, 2.5)],
      'train/tokens_per_s': [(1, 100.0)],
      'eval/loss': [(2, 2.75)],
  }
  texts = [v for e in events for v in e.summary.value if v.tag.startswith('config')]
  assert texts and b'd_model: 128' in texts[0].tensor.string_val[0]
  assert (tmp_path / 'config.txt').read_text() == 'model:\n  d_model: 128\n'


def test_non_primary_writes_nothing(tmp_path, capsys):
  run_dir = tmp_path / 'run'
  w = writers.MetricsWriter(run_dir, is_primary=False)
  w.write(1, {'loss': 1.0})
  w.write_text('config', 'x')
  w.flush()
  w.close()
  assert not run_dir.exists()
  assert capsys.readouterr() == ('', '')


def test_write_after_close_is_a_no_op(tmp_path):
  out = io.StringIO()
  w = writers.MetricsWriter(tmp_path, is_primary=True, tensorboard=False, stream=out)
  w.write(1, {'loss': 1.0})
  w.close()
  w.write(2, {'loss': 2.0})
  w.close()
  assert len(writers.read_jsonl(tmp_path / 'metrics.jsonl')) == 1
  assert out.getvalue().count('\n') == 1


def test_read_jsonl_missing_and_torn(tmp_path):
  assert writers.read_jsonl(tmp_path / 'nope.jsonl') == []
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"step": 1, "train/loss": 2.0}\n{"step": 2, "tr')
  assert writers.read_jsonl(path) == [{'step': 1, 'train/loss': 2.0}]


def test_progress_bar_resumes_and_shows_postfix():
  out = io.StringIO()
  bar = progress.ProgressBar(total_steps=100, initial_step=40, stream=out, mininterval=0)
  assert bar.step == 40
  bar.update(50, loss=2.5, tokens_per_s=1950.0)
  assert bar.step == 50
  bar.close()
  text = out.getvalue()
  assert '50/100' in text and 'loss 2.5000' in text and '1.95k tok/s' in text


def test_progress_bar_disabled():
  out = io.StringIO()
  bar = progress.ProgressBar(total_steps=10, enabled=False, stream=out)
  bar.update(5, loss=1.0, tokens_per_s=1.0)
  bar.write('hello')
  bar.close()
  assert out.getvalue() == ''


def test_progress_bar_non_tty_is_rate_limited():
  out = io.StringIO()  # not a TTY: 60 s between redraws by default
  bar = progress.ProgressBar(total_steps=1000, stream=out)
  for step in range(1, 501):
    bar.update(step, loss=1.0, tokens_per_s=1.0)
  assert out.getvalue().count('/1000') <= 2  # the initial draw, maybe one more
  bar.close()
