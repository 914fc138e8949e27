"""Whether a checkpoint's tensors are the ones a mapping reads: missing, unexpected, mis-shaped.

Checked before any tensor's data is read: a dry run of the mapping's
`params_from_hf` reads zero-cost stand-ins (NumPy broadcasts of the header's
shapes), so every missing tensor is found in one pass and reported together.
A missing tensor's stand-in takes the shape the export side gives that name
(`params_to_hf` of the model's shapes), so the dry run can go on past it.
"""

import fnmatch
from typing import Callable, Mapping

import numpy as np

from lm_jax.errors import ConfigError

_LIST_AT_MOST = 20


def is_ignored(name: str, patterns: tuple[str, ...]) -> bool:
  """`name` equals a pattern, ends with '.' + pattern, or matches it as a glob."""
  return any(name == p or name.endswith('.' + p) or fnmatch.fnmatchcase(name, p)
             for p in patterns)


def _listed(names) -> str:
  names = sorted(names)
  more = len(names) - _LIST_AT_MOST
  return ', '.join(names[:_LIST_AT_MOST]) + (f' (and {more} more)' if more > 0 else '')


def check_tensors(mapping, model_cfg, present: Mapping[str, tuple], expected_hf: Mapping[str, tuple],
                  expected_leaves: Mapping[tuple, tuple], where: str) -> None:
  """Raises one ConfigError listing every missing / unexpected tensor and shape mismatch.

  present: HF name -> shape in the checkpoint; expected_hf: HF name -> shape
  the export side writes for this config; expected_leaves: lm_jax path -> shape.
  """
  used, missing, leaf_problems = set(), set(), []

  def read(name: str) -> np.ndarray:
    used.add(name)
    if name in present:
      return np.broadcast_to(np.zeros((), np.float32), present[name])
    missing.add(name)
    return np.broadcast_to(np.zeros((), np.float32), expected_hf.get(name, (0,)))

  produced = set()
  mismatched = [f'{n}: checkpoint {present[n]}, this config needs {expected_hf[n]}'
                for n in sorted(set(present) & set(expected_hf)) if present[n] != expected_hf[n]]
  try:
    for path, array in mapping.params_from_hf(read, set(present), model_cfg):
      produced.add(path)
      want = expected_leaves.get(path)
      if want is None:
        leaf_problems.append(f'the mapping gives {"/".join(path)}, which the model lacks')
      elif tuple(array.shape) != tuple(want) and not mismatched:
        leaf_problems.append(f'{"/".join(path)}: {tuple(array.shape)} from the checkpoint, '
                             f'the model has {tuple(want)}')
  except (ValueError, IndexError) as e:
    if not (missing or mismatched):  # a reshape failed on a mis-shaped tensor
      leaf_problems.append(f'the checkpoint\'s shapes do not fit this config ({e})')
  unexpected = {n for n in set(present) - used if not is_ignored(n, mapping.ignored_hf_names)}
  not_filled = set(expected_leaves) - produced if not (missing or mismatched) else set()
  problems = []
  if missing:
    problems.append(f'missing tensors ({len(missing)}): {_listed(missing)}')
  if unexpected:
    problems.append(f'unexpected tensors ({len(unexpected)}): {_listed(unexpected)}')
  if mismatched:
    problems.append(f'shape mismatches ({len(mismatched)}): ' + '; '.join(
        mismatched[:_LIST_AT_MOST]))
  problems += leaf_problems[:_LIST_AT_MOST]
  if not_filled:
    problems.append('lm_jax params the checkpoint does not fill: '
                    + _listed('/'.join(p) for p in not_filled))
  if problems:
    raise ConfigError(f'{where} does not hold the weights of this model config:\n  '
                      + '\n  '.join(problems))


def expected_hf_shapes(mapping, abstract_params: Mapping, model_cfg) -> dict[str, tuple]:
  """HF name -> shape the export side writes for `abstract_params` (shapes only)."""
  zeros = _tree_map(lambda s: np.broadcast_to(np.zeros((), np.float32), s.shape),
                    abstract_params)
  return {name: tuple(np.shape(a)) for name, a in mapping.params_to_hf(zeros, model_cfg)}


def _tree_map(fn: Callable, tree):
  if isinstance(tree, Mapping):
    return {k: _tree_map(fn, v) for k, v in tree.items()}
  return fn(tree)
