"""`export_hf(run_dir, out_dir)`: an lm_jax checkpoint -> a directory transformers loads.

Writes config.json (the family mapping's `config_to_hf`), the weights as
safetensors (one model.safetensors, or shards of at most `max_shard_bytes`
with model.safetensors.index.json) and, when the run's tokenizer is a
Hugging Face one, its tokenizer.json. Only the params are read from the
checkpoint (not the optimizer state), as host NumPy arrays.
"""

import json
import os

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from safetensors.numpy import save_file

from lm_jax.build import task_of
from lm_jax.checkpoint import Checkpointer
from lm_jax.data import special_tokens, tokenizers
from lm_jax.errors import ConfigError
from lm_jax.interop import hf_config, hf_tokenizer
from lm_jax.interop.safetensors_reader import INDEX_FILE, SINGLE_FILE
from lm_jax.models.registry import get_family, model_fns

DEFAULT_SHARD_BYTES = 4 << 30


def _step_of(ckpt: Checkpointer, run_dir: str, step: int | None) -> int:
  steps = ckpt.all_steps()
  if not steps:
    raise ConfigError(f'--run {run_dir}: no checkpoint in {ckpt.directory}')
  if step is None:
    return max(steps)
  if step not in steps:
    raise ConfigError(f'--step {step}: no checkpoint of step {step} in {ckpt.directory}; '
                      f'saved steps: {sorted(steps)}')
  return step


def _vocab_size(config, run_dir: str) -> int:
  """The model's vocabulary: config.model.vocab_size, or the run's tokenizer and task tokens."""
  if config.model.vocab_size:
    return config.model.vocab_size
  tokenizer = tokenizers.load_tokenizer(os.path.join(run_dir, 'tokenizer'))
  roles = task_of(config).special_tokens(config.data)
  return special_tokens.model_vocab_size(tokenizer, roles)


def _abstract_params(family, module, config):
  """ShapeDtypeStructs of the params (no devices, no mesh)."""
  task = task_of(config)
  spec = task.batch_spec(1, config.data.seq_len, config.data)
  example = {k: np.zeros(shape, dtype) for k, (shape, dtype) in spec.items()}
  fns = model_fns(family, module)
  boxed = jax.eval_shape(fns.init, jax.random.PRNGKey(0), example)['params']
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  return nn.meta.unbox(boxed)


def read_saved_params(ckpt: Checkpointer, step: int, abstract_params) -> dict:
  """The params of checkpoint `step` as NumPy arrays (the optimizer state is not read)."""
  path = os.path.join(ckpt.directory, str(step), 'state')
  item = {'params': abstract_params}
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
  restored = ocp.PyTreeCheckpointer().restore(path, args=ocp.args.PyTreeRestore(
      item=item, restore_args=restore_args, partial_restore=True))
  return restored['params']


def write_safetensors(tensors, out_dir: str, max_shard_bytes: int) -> list[str]:
  """Writes (name, array) pairs as model.safetensors or numbered shards + index; the files."""
  shards, current, size = [], {}, 0
  for name, array in tensors:
    array = np.ascontiguousarray(array)
    if current and size + array.nbytes > max_shard_bytes:
      shards.append(current)
      current, size = {}, 0
    current[name] = array
    size += array.nbytes
    if size >= max_shard_bytes:
      shards.append(current)
      current, size = {}, 0
  if current or not shards:
    shards.append(current)
  metadata = {'format': 'pt'}  # what transformers expects of a safetensors file
  if len(shards) == 1:
    save_file(shards[0], os.path.join(out_dir, SINGLE_FILE), metadata=metadata)
    return [SINGLE_FILE]
  names, weight_map, total = [], {}, 0
  for i, shard in enumerate(shards):
    name = f'model-{i + 1:05d}-of-{len(shards):05d}.safetensors'
    save_file(shard, os.path.join(out_dir, name), metadata=metadata)
    weight_map.update({t: name for t in shard})
    total += sum(a.nbytes for a in shard.values())
    names.append(name)
  with open(os.path.join(out_dir, INDEX_FILE), 'w', encoding='utf-8') as f:
    json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=1)
  return names + [INDEX_FILE]


def export_hf(run_dir: str, out_dir: str, step: int | None = None,
              max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> dict:
  """Writes checkpoint `step` (default: latest) of `run_dir` as a Hugging Face model in `out_dir`."""
  if not os.path.isdir(os.path.join(run_dir, 'checkpoints')):
    raise ConfigError(f'--run {run_dir}: not an lm_jax run directory (no checkpoints/)')
  ckpt_cfg = ml_collections.ConfigDict(dict(keep=1 << 30, async_save=False))
  ckpt = Checkpointer(run_dir, ckpt_cfg)
  try:
    step = _step_of(ckpt, run_dir, step)
    config = hf_config.config_from_dict(ckpt.saved_config(step))
    family = get_family(config.model.family)
    if family.hf is None:
      raise ConfigError(f'config.model.family={family.name!r} has no Hugging Face mapping')
    module, model_cfg = family.build(config.model, _vocab_size(config, run_dir), config.mesh)
    params = read_saved_params(ckpt, step, _abstract_params(family, module, config))
  finally:
    ckpt.close()
  hf_cfg = family.hf.config_to_hf(config, model_cfg)
  os.makedirs(out_dir, exist_ok=True)
  files = write_safetensors(family.hf.params_to_hf(params, model_cfg), out_dir, max_shard_bytes)
  with open(os.path.join(out_dir, hf_config.CONFIG_JSON), 'w', encoding='utf-8') as f:
    json.dump(hf_cfg, f, indent=1)
  has_tokenizer = hf_tokenizer.export_tokenizer(run_dir, out_dir)
  return {'out_dir': out_dir, 'step': step, 'model_type': hf_cfg.get('model_type'),
          'files': files + [hf_config.CONFIG_JSON], 'tokenizer': has_tokenizer}
