"""Mixtures: several sources with weights (data.mixture='SRC:W,SRC:W,...').

Each source is prepared on its own (lm_jax/data/prepared_corpus.py, same format,
text field and tokenizer settings) and sampled per row of every global batch:

  component of global row g = b * B + r   the first c with u < cumsum(weights)[c] / sum,
                                          u = the r-th of B uniforms of
                                          SeedSequence([data.seed, MIXTURE_TAG, b])
  its window                              component c's own shuffled, reshuffled-every-
                                          epoch order of windows, at position g

So a batch depends on the seed and its index only: any process count reads the
same rows, and the iterator state stays the next global batch index (resumable).
Position g of a component's order is read only when row g picks that component,
so each component is sampled without replacement within an epoch of its order
(thinned by its weight). Held-out splits are the components' windows
interleaved round robin (`Interleaved`), so a few eval batches see every source.
"""

import functools
from typing import Any, Sequence

import grain
import numpy as np

from lm_jax.errors import ConfigError

MIXTURE_TAG = 0x6D6978  # 'mix': keeps these uniforms apart from other uses of the seed
_NUM_BATCHES = 1 << 62   # "infinite": batches are made on demand by index


def parse(spec: str) -> list[tuple[str, float]]:
  """'a.jsonl:0.7,b.parquet:0.3' -> [(source, weight)]; ConfigError naming the bad part."""
  parts = []
  for item in spec.split(','):
    source, sep, weight = item.strip().rpartition(':')
    try:
      w = float(weight)
    except ValueError:
      w = -1.0
    if not sep or not source or not w > 0 or w == float('inf'):
      raise ConfigError(f'config.data.mixture={spec!r}: {item!r} is not SOURCE:WEIGHT with a '
                        "positive weight; write e.g. 'web.jsonl:0.7,code.jsonl:0.3'")
    parts.append((source, w))
  if len(parts) < 2:
    raise ConfigError(f'config.data.mixture={spec!r}: a mixture needs at least two sources')
  return parts


def component_choices(seed: int, batch_index: int, global_batch_size: int,
                      weights: Sequence[float]) -> np.ndarray:
  """The component of every row of global batch `batch_index`, int [B]."""
  u_B = np.random.default_rng(np.random.SeedSequence([seed, MIXTURE_TAG, batch_index])).random(
      global_batch_size)
  cum = np.cumsum(weights, dtype=np.float64)
  return np.minimum(np.searchsorted(cum / cum[-1], u_B, side='right'), len(weights) - 1)


class Concat:
  """Token arrays back to back, with len() and contiguous slices."""

  def __init__(self, parts: list):
    self.parts = parts
    self.offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)

  def __len__(self) -> int:
    return int(self.offsets[-1])

  def __getitem__(self, key: slice) -> np.ndarray:
    a, b, _ = key.indices(len(self))
    out, i = [], max(int(np.searchsorted(self.offsets, a, side='right')) - 1, 0)
    while i < len(self.parts) and self.offsets[i] < b:
      lo, hi = max(a, self.offsets[i]), min(b, self.offsets[i + 1])
      if lo < hi:
        out.append(np.asarray(self.parts[i][int(lo - self.offsets[i]):int(hi - self.offsets[i])]))
      i += 1
    return np.concatenate(out) if out else np.zeros(0, np.int32)


class Interleaved:
  """The `window`-token windows of several token arrays, round robin (window j of every
  source before window j + 1 of any), as one token array: the first batches of a held-out
  split then hold every source, not only the first."""

  def __init__(self, parts: list, window: int):
    self.parts, self.window = parts, window
    counts = [len(p) // window for p in parts]
    comp = np.concatenate([np.full(n, c, np.int32) for c, n in enumerate(counts)])
    pos = np.concatenate([np.arange(n, dtype=np.int64) for n in counts])
    order = np.lexsort((comp, pos))  # by position, then source
    self.comp_N, self.pos_N = comp[order], pos[order]

  def __len__(self) -> int:
    return len(self.comp_N) * self.window

  def __getitem__(self, key: slice) -> np.ndarray:
    a, b, _ = key.indices(len(self))
    k = a // self.window
    if a % self.window or b - a != self.window:
      raise IndexError('Interleaved reads whole windows only')
    start = int(self.pos_N[k]) * self.window
    return np.asarray(self.parts[self.comp_N[k]][start:start + self.window])


def _read_mixture_rows(batch_index: int, _, *, windows, orders, weights, seed, rows,
                       global_batch_size, make):
  choice_B = component_choices(seed, batch_index, global_batch_size, weights)
  g_B = batch_index * global_batch_size + np.asarray(rows, np.int64)
  windows_BxW = np.stack([windows[choice_B[r]][orders[choice_B[r]][int(g)]]
                          for r, g in zip(rows, g_B)])
  return make(windows_BxW, g_B)


def mixture_dataset(tokens: list, weights: Sequence[float], seq_len: int,
                    global_batch_size: int, seed: int, rows: tuple[int, ...], make,
                    windows_cls, shuffle_seed) -> grain.MapDataset:
  """The infinite dataset of this process's rows of mixture batches (see the module doc)."""
  window = make.window_len(seq_len)
  windows = [windows_cls(t, window) for t in tokens]
  for (i, w), t in zip(enumerate(windows), tokens):
    if len(w) < 1:
      raise ValueError(f'mixture source {i} has {len(t)} train tokens, less than one window '
                       f'of {window}; give it more data or drop it from data.mixture')
  orders = [grain.MapDataset.range(len(w)).shuffle(seed=shuffle_seed(seed * 1009 + i)).repeat()
            for i, w in enumerate(windows)]
  read = functools.partial(_read_mixture_rows, windows=windows, orders=orders,
                           weights=list(weights), seed=seed, rows=rows,
                           global_batch_size=global_batch_size, make=make)
  return grain.MapDataset.range(_NUM_BATCHES).map_with_index(read)


def component_config(data_cfg: Any, source: str) -> Any:
  """data_cfg with `source` in place of the mixture (one component's settings)."""
  cfg = data_cfg.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.source, cfg.mixture = source, ''
    if cfg.separator == 'auto':  # documents of different sources never run together
      cfg.separator = 'eos'
  return cfg
