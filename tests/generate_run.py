"""A tiny run directory (quickstart:runlocal's model, random weights, byte tokenizer) for
generation and harness tests, saved with the checkpoint code training uses."""

import os

import jax

from lm_jax.build import build
from lm_jax.checkpoint import Checkpointer
from lm_jax.config.loader import load_config
from lm_jax.data.tokenizers import ByteTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_run_dir(run_dir: str, step: int = 3, **model):
  """Saves a fresh quickstart:runlocal state as checkpoint `step` of `run_dir`; returns
  (config, built, state)."""
  config = load_config(os.path.join(ROOT, 'configs', 'quickstart.py') + ':runlocal')
  config.mesh.data = 1
  config.model.update(model)
  config.logging.run_dir = run_dir
  config.checkpoint.async_save = False
  built = build(config, 256, devices=jax.devices()[:1])
  state = built.init_state(0).replace(step=jax.numpy.int32(step))
  ByteTokenizer().save(os.path.join(run_dir, 'tokenizer'))
  ckpt = Checkpointer(run_dir, config.checkpoint)
  ckpt.save(state, None, config, force=True)
  ckpt.close()
  return config, built, state
