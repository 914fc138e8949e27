"""A tiny run directory (quickstart:runlocal's model, or another config's, random weights,
byte tokenizer) for generation, fill-mask and harness tests, saved with the checkpoint code
training uses."""

import os

import jax

from lm_jax.build import build, task_of
from lm_jax.checkpoint import Checkpointer
from lm_jax.config.loader import load_config
from lm_jax.data import special_tokens
from lm_jax.data.tokenizers import ByteTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_run_dir(run_dir: str, step: int = 3, tokenizer=None, params=None,
                 config_file: str = 'quickstart.py:runlocal', **model):
  """Saves a fresh state of configs/<config_file> (or one holding `params`) as checkpoint
  `step` of `run_dir`, with `tokenizer` (default: bytes); returns (config, built, state)."""
  config = load_config(os.path.join(ROOT, 'configs', config_file))
  config.mesh.data = 1
  config.model.update(model)
  config.logging.run_dir = run_dir
  config.checkpoint.async_save = False
  tokenizer = tokenizer or ByteTokenizer()
  if tokenizer.kind != 'byte':
    config.data.update(tokenizer=tokenizer.kind, bpe_vocab_size=tokenizer.vocab_size)
  roles = task_of(config).special_tokens(config.data)  # the task's ids, as load_run counts
  built = build(config, special_tokens.model_vocab_size(tokenizer, roles),
                devices=jax.devices()[:1])
  state = built.init_state(0).replace(step=jax.numpy.int32(step))
  if params is not None:
    state = state.replace(params=jax.tree.map(
        lambda new, old: jax.device_put(jax.numpy.asarray(new, old.dtype), old.sharding),
        params, state.params))
  tokenizer.save(os.path.join(run_dir, 'tokenizer'))
  ckpt = Checkpointer(run_dir, config.checkpoint)
  ckpt.save(state, None, config, force=True)
  ckpt.close()
  return config, built, state
