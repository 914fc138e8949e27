"""Where the decoder keeps a layer's params: the layouts the HF mappings fill and read.

A block leaf (e.g. ('attn', 'query', 'kernel')) lives per layer as
`layer_<i>/...` (plain), stacked `[layers, ...]` under `layers/...`
(model.scan_layers), or `[stage, layers / stage, ...]` under
`pipeline/stages/layers/...` (mesh.stage > 1). The GPT-2 and Llama mappings
describe one layer; these functions put it in the model config's layout.
"""

from typing import Callable, Iterator, Mapping

import numpy as np

from lm_jax.models.hf_mapping import ParamPath

_PIPELINE_PREFIX = ('pipeline', 'stages', 'layers')


def norm_leaf(cfg, module: str, leaf: str) -> ParamPath:
  """The path of a norm's `scale` / `bias` inside `module` (flax names its inner norm)."""
  return (module, 'RMSNorm_0' if cfg.norm == 'rmsnorm' else 'LayerNorm_0', leaf)


def block_leaves(cfg, leaves: Mapping[ParamPath, Callable[[int], np.ndarray]]
                 ) -> Iterator[tuple[ParamPath, np.ndarray]]:
  """(path, array) of every block leaf: `leaves[sub](layer index)` -> one layer's array.

  Stacked layouts build one leaf at a time (host memory: one stacked leaf),
  filling a preallocated array layer by layer.
  """
  layers = cfg.num_layers
  for sub, layer_array in leaves.items():
    if not (cfg.scan_layers or cfg.num_stages > 1):
      for i in range(layers):
        yield (f'layer_{i}',) + sub, layer_array(i)
      continue
    first = layer_array(0)
    stacked = np.empty((layers,) + first.shape, first.dtype)
    stacked[0] = first
    del first
    for i in range(1, layers):
      stacked[i] = layer_array(i)
    if cfg.num_stages > 1:
      stages = cfg.num_stages
      yield _PIPELINE_PREFIX + sub, stacked.reshape((stages, layers // stages) + stacked.shape[1:])
    else:
      yield ('layers',) + sub, stacked


def layer_params(params: Mapping, cfg, i: int) -> Mapping:
  """Layer i's params (nested dict of arrays) in any layout, as views."""
  if not (cfg.scan_layers or cfg.num_stages > 1):
    return params[f'layer_{i}']
  if cfg.num_stages > 1:
    tree = params
    for key in _PIPELINE_PREFIX:
      tree = tree[key]
    per_stage = cfg.num_layers // cfg.num_stages
    index = (i // per_stage, i % per_stage)
  else:
    tree, index = params['layers'], i
  return _map(lambda a: a[index], tree)


def _map(fn, tree):
  if isinstance(tree, Mapping):
    return {k: _map(fn, v) for k, v in tree.items()}
  return fn(tree)


def get(tree: Mapping, path: ParamPath):
  """tree[path[0]][path[1]]..."""
  for key in path:
    tree = tree[key]
  return tree


def pad_rows(w_VxD: np.ndarray, rows: int) -> np.ndarray:
  """The HF vocabulary's rows, zero rows appended up to the padded vocabulary."""
  if w_VxD.shape[0] >= rows:
    return w_VxD
  pad = np.zeros((rows - w_VxD.shape[0],) + w_VxD.shape[1:], w_VxD.dtype)
  return np.concatenate([w_VxD, pad], axis=0)
