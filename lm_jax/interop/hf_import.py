"""`import_hf(hf_dir, run_dir)`: a Hugging Face model directory -> an lm_jax run directory.

The family whose mapping reads config.json's model_type derives the lm_jax
config (or checks the one given); `lm_jax.build.build` makes the model, its
mesh and shardings; the tensors are checked by name and shape, then streamed
one at a time from safetensors into their sharded arrays; the run directory
gets a normal checkpoint (step 0, a fresh optimizer state, data position 0),
the tokenizer when the model directory has tokenizer.json, and config.py for
`lm-jax train|eval --config RUN_DIR/config.py`.
"""

import copy
import logging
import os

import jax
import ml_collections

from lm_jax.build import build
from lm_jax.checkpoint import Checkpointer, has_checkpoint
from lm_jax.data.tokenizers import ByteTokenizer
from lm_jax.errors import ConfigError
from lm_jax.interop import hf_config, hf_tokenizer, placement, tensor_check
from lm_jax.interop.safetensors_reader import SafetensorsCheckpoint


class _StartOfData:
  """The data position of a run that has read nothing (lm_jax/data/checkpointing.py's form)."""

  def get_state(self) -> dict:
    return {'next_index': 0}


def import_config(hf_dir: str, run_dir: str, config: ml_collections.ConfigDict | None = None):
  """(lm_jax config, family, tokenizer or None) for importing `hf_dir` into `run_dir`."""
  hf_cfg = hf_config.read_hf_config(hf_dir)
  family = hf_config.family_for(hf_cfg.get('model_type'))
  keys = family.hf.config_from_hf(hf_cfg)
  tokenizer = hf_tokenizer.hf_tokenizer(hf_dir)
  if tokenizer is not None:
    keys.update({'data.tokenizer': 'bpe', 'data.bpe_vocab_size': tokenizer.vocab_size})
  config = hf_config.apply_keys(keys, copy.deepcopy(config),
                                os.path.join(hf_dir, hf_config.CONFIG_JSON))
  config.logging.run_dir = run_dir
  if not config.model.vocab_size:
    raise ConfigError(f'{hf_dir}/config.json gives no vocabulary size for the model')
  if tokenizer is not None:
    hf_tokenizer.check_vocab(tokenizer.vocab_size, config.model.vocab_size,
                             os.path.join(hf_dir, 'tokenizer.json'))
  elif config.data.tokenizer == 'byte' and config.model.vocab_size < ByteTokenizer.vocab_size:
    logging.warning('%s has no tokenizer.json and its vocabulary (%d) is smaller than the byte '
                    'tokenizer\'s: train or eval the run with a --config naming its tokenizer',
                    hf_dir, config.model.vocab_size)
  return config, family, tokenizer


def read_params(built, hf_dir: str) -> dict:
  """The checkpoint's weights as the built model's sharded params (checked first)."""
  mapping, model_cfg = built.family.hf, built.model_cfg
  abstract = built.abstract_state().params
  expected_leaves = {p: tuple(s.shape) for p, s in placement.flatten(abstract).items()}
  with SafetensorsCheckpoint(hf_dir) as ckpt:
    present = {name: ckpt.shape(name) for name in ckpt.names}
    tensor_check.check_tensors(
        mapping, model_cfg, present,
        tensor_check.expected_hf_shapes(mapping, abstract, model_cfg), expected_leaves,
        where=hf_dir)
    leaves = mapping.params_from_hf(ckpt.read, ckpt.names, model_cfg)
    with jax.set_mesh(built.mesh):
      return placement.place_params(leaves, abstract)


def import_hf(hf_dir: str, run_dir: str, config: ml_collections.ConfigDict | None = None,
              devices=None) -> dict:
  """Imports the HF model directory `hf_dir` as a new lm_jax run in `run_dir`.

  config: an lm_jax config to start from (its training, data and mesh settings
  stay; model keys must agree with the checkpoint's); default base_config().
  devices: the target mesh's devices (default: all). Returns a summary dict.
  """
  if has_checkpoint(run_dir):
    raise ConfigError(f'--to {run_dir}: already holds checkpoints; import into a new run '
                      'directory')
  config, family, tokenizer = import_config(hf_dir, run_dir, config)
  built = build(config, config.model.vocab_size, devices=devices)
  params = read_params(built, hf_dir)
  state = placement.fresh_state(built, params)
  os.makedirs(run_dir, exist_ok=True)
  ckpt_cfg = ml_collections.ConfigDict(config.checkpoint.to_dict())
  ckpt_cfg.async_save = False
  ckpt = Checkpointer(run_dir, ckpt_cfg)
  ckpt.save(state, _StartOfData(), config, force=True)
  ckpt.close()
  if tokenizer is not None and jax.process_index() == 0:
    hf_tokenizer.save_with_run(tokenizer, hf_dir, run_dir)
  config_file = (hf_config.write_run_config(config, run_dir, hf_dir)
                 if jax.process_index() == 0 else None)
  logging.info('imported %s (%s) into %s', hf_dir, family.name, run_dir)
  return {'run_dir': run_dir, 'config_file': config_file, 'family': family.name,
          'params': int(sum(x.size for x in jax.tree.leaves(params))),
          'tokenizer': tokenizer is not None, 'mesh': built.mesh_shape}
