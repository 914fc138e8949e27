"""The Hugging Face weight mapping a family declares (`Family.hf`).

The converter (`lm_jax/interop/`) is family-agnostic: it reads `config.json`,
finds the family whose mapping handles its `model_type`, and streams tensors
through these functions. Each family keeps its own mapping next to its model
(`lm_jax/models/<family>/hf.py`), so no file branches on architectures.

Parameter paths are tuples of keys into the `params` collection (no leading
'params'), in the layout the resolved model config gives (stacked
`[layers, ...]` under scan_layers). Arrays are NumPy, float32 unless the
checkpoint says otherwise.
"""

import dataclasses
from typing import Any, Callable, Iterator, Mapping

import numpy as np

ParamPath = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class HFMapping:
  """How one family's params and config correspond to Hugging Face's."""
  # config.json `model_type` values this mapping reads (e.g. ('gpt2',), ('llama',)).
  model_types: tuple[str, ...]
  # config_from_hf(hf_config dict) -> {dotted lm_jax config key: value}
  # (e.g. {'model.family': 'decoder', 'model.num_layers': 12, ...}); raises
  # ConfigError naming the HF key for a setting lm_jax cannot express.
  config_from_hf: Callable[[dict], dict[str, Any]]
  # config_to_hf(config ConfigDict, model_cfg resolved dataclass) -> config.json dict
  # that transformers' AutoConfig / from_pretrained loads.
  config_to_hf: Callable[[Any, Any], dict]
  # params_from_hf(read, names, model_cfg) -> iterator of (lm_jax param path, array).
  # read(name) returns one HF tensor as np.ndarray (read lazily, one at a time);
  # names is the set of tensor names in the checkpoint. Every yielded leaf is
  # in its final lm_jax shape; the converter reports missing / unexpected
  # names and shape mismatches, so the mapping should `read` exactly the
  # tensors it uses.
  params_from_hf: Callable[[Callable[[str], np.ndarray], set[str], Any],
                           Iterator[tuple[ParamPath, np.ndarray]]]
  # params_to_hf(params nested dict of np.ndarray, model_cfg) -> iterator of
  # (HF tensor name, array) for safetensors.
  params_to_hf: Callable[[Mapping, Any], Iterator[tuple[str, np.ndarray]]]
  # HF names that may be absent or that HF computes itself (e.g. GPT-2's attn.bias buffers).
  # The converter (lm_jax/interop/tensor_check.py) matches each entry against a name
  # exactly, as a dotted suffix ('attn.bias' matches 'transformer.h.0.attn.bias') or as a glob.
  ignored_hf_names: tuple[str, ...] = ()
