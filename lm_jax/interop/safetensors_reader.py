"""Reading a Hugging Face checkpoint's tensors lazily, one at a time, from safetensors.

A model directory holds `model.safetensors`, or shards listed by
`model.safetensors.index.json` ({"weight_map": {tensor name: shard file}}).
Only safetensors are read (`safetensors.safe_open`: a header of names, dtypes
and shapes, then raw bytes), never pickles: a `pytorch_model.bin` is refused
with how to convert it.
"""

import json
import os

import numpy as np
from safetensors import safe_open

from lm_jax.errors import ConfigError

SINGLE_FILE = 'model.safetensors'
INDEX_FILE = 'model.safetensors.index.json'
_PICKLES = ('pytorch_model.bin', 'pytorch_model.bin.index.json', 'tf_model.h5',
            'flax_model.msgpack')


class SafetensorsCheckpoint:
  """The tensors of one HF model directory: names, shapes, and one-tensor reads.

  Each read opens its shard, copies the one tensor out and closes it again:
  safe_open memory-maps the file, and a mapping kept open would keep every
  page read so far resident in this process (the whole checkpoint, by the
  end). Headers are small, so reopening costs little.
  """

  def __init__(self, hf_dir: str):
    self.hf_dir = hf_dir
    self._shard_of = _shard_map(hf_dir)  # tensor name -> shard file name
    self._shapes = {}
    for shard in sorted(set(self._shard_of.values())):
      with self._open(shard, next(n for n, s in self._shard_of.items() if s == shard)) as f:
        for name in f.keys():
          if self._shard_of.get(name) == shard:
            self._shapes[name] = tuple(f.get_slice(name).get_shape())
    absent = sorted(set(self._shard_of) - set(self._shapes))
    if absent:
      raise ConfigError(f'{os.path.join(hf_dir, INDEX_FILE)} lists tensors its shards do not '
                        f'hold: {", ".join(absent[:20])}')

  def __enter__(self) -> 'SafetensorsCheckpoint':
    return self

  def __exit__(self, *exc):
    return None

  @property
  def names(self) -> set[str]:
    return set(self._shard_of)

  def _open(self, shard: str, name: str):
    path = os.path.join(self.hf_dir, shard)
    if not os.path.isfile(path):
      raise ConfigError(f'{os.path.join(self.hf_dir, INDEX_FILE)} lists tensor {name!r} '
                        f'in {shard!r}, which is not in {self.hf_dir}')
    return safe_open(path, framework='numpy')

  def shape(self, name: str) -> tuple[int, ...]:
    """The tensor's shape, from the header (no data read)."""
    return self._shapes[name]

  def read(self, name: str) -> np.ndarray:
    """One tensor as a NumPy array of its own (bfloat16 as ml_dtypes.bfloat16)."""
    if name not in self._shard_of:
      raise KeyError(name)
    with self._open(self._shard_of[name], name) as f:
      return np.array(f.get_tensor(name), copy=True)


def _shard_map(hf_dir: str) -> dict[str, str]:
  """{tensor name: file} of a single-file or sharded checkpoint; ConfigError if neither."""
  index = os.path.join(hf_dir, INDEX_FILE)
  if os.path.isfile(index):
    with open(index, encoding='utf-8') as f:
      try:
        weight_map = json.load(f)['weight_map']
      except (ValueError, KeyError) as e:
        raise ConfigError(f'{index}: not a safetensors index (expected a JSON object with '
                          f'"weight_map": {{tensor name: shard file}}): {e}') from e
    return dict(weight_map)
  single = os.path.join(hf_dir, SINGLE_FILE)
  if os.path.isfile(single):
    with safe_open(single, framework='numpy') as f:
      return {name: SINGLE_FILE for name in f.keys()}
  present = [p for p in _PICKLES if os.path.exists(os.path.join(hf_dir, p))]
  hint = (f'; it holds {", ".join(present)}, which lm_jax never loads (pickles can run code): '
          'convert it with transformers: AutoModelForCausalLM.from_pretrained(dir)'
          '.save_pretrained(dir, safe_serialization=True)') if present else ''
  raise ConfigError(f'{hf_dir}: no {SINGLE_FILE} or {INDEX_FILE}{hint}')
