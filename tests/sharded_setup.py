"""A tiny model + batch + sharded state on a given mesh, shared by parallel tests.

Everything is made by lm_jax.build.build, the builder training uses.
"""

import dataclasses

import jax
import numpy as np
import optax

from lm_jax.build import build
from lm_jax.config.defaults import base_config
from lm_jax.objectives.cross_entropy import CrossEntropy
from lm_jax.parallel.mesh import batch_sharding
from lm_jax.train.state import state_shardings

VOCAB, SEQ, BATCH = 61, 16, 8


def tiny_model_cfg(style: str = 'gpt'):
  """2 layers, d_model 32, 4 heads: heads and MLP split 4 ways for TP tests."""
  m = base_config().model
  m.update(num_layers=2, d_model=32, num_heads=4, max_len=SEQ, vocab_multiple=64,
           use_bias=True)
  if style == 'llama':
    m.update(num_heads=8, num_kv_heads=4, position='rope', norm='rmsnorm',
             mlp='swiglu', use_bias=False, tie_embeddings=False, mlp_dim=64)
  return m


def tiny_config(model_cfg, mesh_shape: dict, batch: int = BATCH, seq: int = SEQ):
  """The base config with `model_cfg`, the mesh sizes and a [batch, seq] global batch."""
  c = base_config()
  c.model = model_cfg
  c.mesh.update({'data': 1, **mesh_shape})
  c.train.update(global_batch_size=batch, eval_every=0)
  c.data.seq_len = seq
  return c


def objective(z_loss: float = 0.0):
  """The cross-entropy objective over the tests' vocabulary."""
  return CrossEntropy(vocab_size=VOCAB, z_loss=z_loss)


def random_batch(seed: int = 0, batch: int = BATCH, seq: int = SEQ):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, VOCAB, size=(batch, seq + 1), dtype=np.int32)
  weights = np.ones((batch, seq), np.float32)
  weights[0, -3:] = 0.0  # some padding, so the mask path is exercised
  return {'inputs': tokens[:, :-1], 'targets': tokens[:, 1:], 'weights': weights}


def built_for(model_cfg, mesh_shape: dict, tx=None, batch: int = BATCH, seq: int = SEQ,
              devices=None):
  """lm_jax.build.build of the tiny config on the first prod(mesh) devices (tx: override)."""
  size = int(np.prod(list(mesh_shape.values())))
  devices = jax.devices()[:size] if devices is None else devices
  built = build(tiny_config(model_cfg, mesh_shape, batch, seq), VOCAB, devices)
  if tx is not None:
    built = dataclasses.replace(
        built, tx=tx, state_shardings=state_shardings(built.fns, tx, built.example_batch(),
                                                      built.mesh, built.rules))
  return built


def sharded_state(model_cfg, mesh_shape: dict, tx=None, seed: int = 0, devices=None):
  """(module, state, state_shardings, mesh, rules) for the mesh shape."""
  built = built_for(model_cfg, mesh_shape, tx or optax.adamw(1e-2), devices=devices)
  state = built.init_state(seed)
  return built.module, state, built.state_shardings, built.mesh, built.rules


def place_batch(batch, mesh, rules):
  sharding = batch_sharding(mesh, rules)
  return {k: jax.device_put(v, sharding) for k, v in batch.items()}
