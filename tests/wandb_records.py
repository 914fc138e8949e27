"""Reading back what wandb wrote offline: the records of `run-<id>.wandb` files.

The file is a LevelDB log (32 KiB blocks of chunks, each with a 7-byte header:
crc32 (4, little-endian), length (2), type (1: full, 2: first, 3: middle,
4: last)) after a 7-byte ':W&B' file header; every record is a
wandb_internal_pb2.Record protobuf.
"""

import glob
import json
import os
import struct
import time

_BLOCK = 32768
_HEADER = 7


def read_records(path: str) -> list:
  """The protobuf Records of one .wandb file, in order."""
  from wandb.proto import wandb_internal_pb2  # pylint: disable=g-import-not-at-top
  with open(path, 'rb') as f:
    data = f.read()
  assert data[:4] == b':W&B', f'{path} is not a W&B transaction log'
  chunks, pending, pos = [], b'', _HEADER
  while pos + _HEADER <= len(data):
    left = _BLOCK - pos % _BLOCK
    if left < _HEADER:  # block trailer: zero padding
      pos += left
      continue
    _, length, kind = struct.unpack('<IHB', data[pos:pos + _HEADER])
    chunk = data[pos + _HEADER:pos + _HEADER + length]
    pos += _HEADER + length
    if kind == 1:
      chunks.append(chunk)
    elif kind == 2:
      pending = chunk
    elif kind == 3:
      pending += chunk
    elif kind == 4:
      chunks.append(pending + chunk)
    elif kind == 0:  # zero padding to the end of the block
      pos += (_BLOCK - pos % _BLOCK) % _BLOCK
  records = []
  for chunk in chunks:
    record = wandb_internal_pb2.Record()
    record.ParseFromString(chunk)
    records.append(record)
  return records


def offline_runs(wandb_dir: str, count: int, timeout: float = 60.0) -> dict[str, list]:
  """{offline run directory name: its records} under $WANDB_DIR/wandb, by start time.

  wandb's core process may still be writing a file after wandb.finish() (or the
  training process) returned, so this waits until `count` runs hold their
  final `exit` record.
  """
  deadline = time.monotonic() + timeout
  while True:
    out = {}
    for path in glob.glob(os.path.join(wandb_dir, 'wandb', 'offline-run-*', 'run-*.wandb')):
      out[os.path.basename(os.path.dirname(path))] = read_records(path)
    complete = [recs for recs in out.values()
                if any(r.WhichOneof('record_type') == 'exit' for r in recs)]
    if len(complete) >= count or time.monotonic() > deadline:
      break
    time.sleep(0.2)
  return dict(sorted(out.items(), key=lambda kv: _start_time(kv[1])))


def _start_time(records) -> float:
  for r in records:
    if r.WhichOneof('record_type') == 'run':
      return r.run.start_time.seconds + r.run.start_time.nanos * 1e-9
  return float('inf')


def history(records) -> list[dict]:
  """Each logged row as {metric: value} (W&B's own _step/_runtime/_timestamp dropped)."""
  rows = []
  for r in records:
    if r.WhichOneof('record_type') == 'history':
      row = {(i.key or '/'.join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
      rows.append({k: v for k, v in row.items() if not k.startswith('_')})
  return rows


def config(records) -> dict:
  """The run's config: every config update merged, values decoded."""
  out = {}
  for r in records:
    if r.WhichOneof('record_type') == 'config':
      out.update({i.key: json.loads(i.value_json) for i in r.config.update})
  return out


def run_ids(records) -> list[str]:
  return [r.run.run_id for r in records if r.WhichOneof('record_type') == 'run']
