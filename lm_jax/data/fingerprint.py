"""What identifies a run's data: file contents, the corpus, and the token stream + batch order.

  file_digests        sha256 of each file's bytes, memoised by stat in <cache_dir>/file-digests.json
  corpus_fingerprint  the corpus content (file digests in order, max_bytes): keys the token cache
  data_fingerprint    what a checkpoint's params and iterator position depend on: corpus content,
                      tokenizer, split rule and fractions, seq_len, global batch, seed, max_bytes
  differences         saved vs current data fingerprint, one line per difference

Content, not names or mtimes: `cp -p`, `rsync -t` and `tar x` restore size and
mtime of a rewritten file, so a stat-keyed cache would serve the old tokens.
The memo trusts a digest only while (size, mtime, ctime, inode) are unchanged:
no tool restores ctime.
"""

import hashlib
import json
import os
import tempfile
import time
from typing import Any

from absl import logging

from lm_jax.data import sources

# Bump when the cached token format or the tokenization rule changes (it keys the
# token cache). 2: content digests; 1 keyed corpora by path, size and mtime.
_VERSION = 2
_MEMO_FILE = 'file-digests.json'
# A digest taken within this long after the file's last change is not trusted
# next time: a second write in the same timestamp tick would leave the stat
# unchanged (git's "racily clean" problem). It is re-hashed once, then trusted.
_RACY_NS = 2_000_000_000

# How the token stream becomes windows, splits and batches; bump when it changes.
STREAM_RULE = ('v1: train = tokens[:int(T*(1-val-test))], val up to int(T*(1-test)), test the '
               'tail; non-overlapping seq_len+1 windows; grain shuffle of window indices, '
               'reseeded each epoch')
# The config keys that shape the stream (data.max_bytes is in the corpus too:
# listed so that a refusal names it).
CONFIG_KEYS = ('data.val_fraction', 'data.test_fraction', 'data.seq_len', 'data.seed',
               'data.max_bytes', 'train.global_batch_size')
# What an older checkpoint's config is compared on (it holds no fingerprint);
# before test splits existed there was none.
_LEGACY_KEYS = ('data.source', 'data.file_glob') + CONFIG_KEYS
_LEGACY_VALUES = {'data.test_fraction': 0.0}


def file_digest(path: str) -> str:
  """Returns the sha256 hex digest of the file's bytes (streamed, never whole in memory)."""
  # sha256, not blake2b: OpenSSL's uses the CPU's SHA instructions (x86 SHA-NI,
  # ARMv8 SHA2) and ran 2x faster here (experiments/hash_speed.py).
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()


def _stamp(st: os.stat_result) -> list[int]:
  return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_memo(memo_dir: str | None) -> dict:
  if not memo_dir:
    return {}
  try:
    with open(os.path.join(memo_dir, _MEMO_FILE), encoding='utf-8') as f:
      memo = json.load(f)
    return memo if isinstance(memo, dict) else {}
  except (OSError, ValueError):  # none yet, or unreadable: hash again
    return {}


def _write_memo(memo_dir: str, new_entries: dict) -> None:
  """Merges `new_entries` into the memo file (re-read first: other runs may have added some)."""
  memo = _read_memo(memo_dir)
  memo.update(new_entries)
  try:
    os.makedirs(memo_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=memo_dir, prefix='.tmp-')
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      json.dump(memo, f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(memo_dir, _MEMO_FILE))
  except OSError as e:  # best effort: a read-only cache dir only costs re-hashing
    logging.warning('data: could not record file digests in %s: %s', memo_dir, e)


def file_digests(paths: list[str], memo_dir: str | None = None) -> list[str]:
  """Returns the content digest of each file, hashing only files whose stat changed."""
  memo, fresh, digests = _read_memo(memo_dir), {}, []
  for path in paths:
    key = os.path.abspath(path)
    started_ns = time.time_ns()
    stamp = _stamp(os.stat(path))
    entry = memo.get(key)
    if (isinstance(entry, dict) and entry.get('stat') == stamp
        and entry.get('hashed_ns', 0) - stamp[2] > _RACY_NS):
      digests.append(entry['sha256'])
      continue
    digest = file_digest(path)
    digests.append(digest)
    fresh[key] = {'stat': stamp, 'sha256': digest, 'hashed_ns': started_ns}
  if fresh and memo_dir:
    _write_memo(memo_dir, fresh)
  return digests


def corpus_fingerprint(files: list[str], max_bytes: int, memo_dir: str | None = None) -> dict:
  """Returns what identifies the corpus text: the files' sizes and digests in order, max_bytes."""
  digests = file_digests(files, memo_dir)
  return {'version': _VERSION, 'max_bytes': max_bytes,
          'files': [[os.path.getsize(p), d] for p, d in zip(files, digests)],
          'separator': sources.SEPARATOR.decode()}


def corpus_id(corpus_fp: dict) -> str:
  """Returns a short hash of a corpus fingerprint."""
  return hashlib.sha256(json.dumps(corpus_fp, sort_keys=True).encode()).hexdigest()[:20]


def data_fingerprint(data_cfg: Any, global_batch_size: int, tokenizer_identity: str,
                     corpus_fp: dict, task=None) -> dict:
  """Returns what a checkpoint's iterator position and trained-on text depend on (JSON):
  the corpus, tokenizer, split, batch order and the task that makes batches (its name
  and the data keys it reads)."""
  task_values = {}
  if task is not None:
    task_values['data.task'] = task.name
    task_values.update({f'data.{k}': data_cfg[k] for k in task.config_keys})
  values = {**task_values, 'data.val_fraction': float(data_cfg.val_fraction),
            'data.test_fraction': float(data_cfg.test_fraction),
            'data.seq_len': int(data_cfg.seq_len), 'data.seed': int(data_cfg.seed),
            'data.max_bytes': int(data_cfg.max_bytes),
            'train.global_batch_size': int(global_batch_size)}
  return {'corpus': corpus_id(corpus_fp), 'tokenizer': tokenizer_identity,
          'stream_rule': STREAM_RULE, **values}


def config_differences(saved_config: dict, current_config: dict) -> list[str]:
  """Returns 'key: saved X, now Y' for the data keys of two configs (old checkpoints)."""
  def value(config, key):
    section, name = key.split('.')
    return config.get(section, {}).get(name, _LEGACY_VALUES.get(key))
  return [f'{key}: saved {value(saved_config, key)!r}, now {value(current_config, key)!r}'
          for key in _LEGACY_KEYS if value(saved_config, key) != value(current_config, key)]


_LABELS = {
    'corpus': 'corpus content (the text data.source, data.file_glob and data.max_bytes select)',
    'tokenizer': 'tokenizer (<run_dir>/tokenizer)',
    'stream_rule': 'how tokens become splits and batches (lm_jax version)',
}


def differences(saved: dict, current: dict) -> list[str]:
  """Returns one 'what: saved X, now Y' line per key of `saved` whose value differs."""
  return [f'{_LABELS.get(k, k)}: saved {v!r}, now {current.get(k)!r}'
          for k, v in saved.items() if current.get(k) != v]
