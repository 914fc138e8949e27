"""A tiny model + batch + sharded state on a given mesh, shared by parallel tests."""

import jax
import numpy as np
import optax

from lm_jax.config.defaults import base_config
from lm_jax.models import build_model
from lm_jax.parallel.mesh import batch_sharding, make_mesh
from lm_jax.parallel.rules import rules_for_mesh
from lm_jax.train.state import create_train_state

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


def random_batch(seed: int = 0, batch: int = BATCH, seq: int = SEQ):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, VOCAB, size=(batch, seq + 1), dtype=np.int32)
  weights = np.ones((batch, seq), np.float32)
  weights[0, -3:] = 0.0  # some padding, so the mask path is exercised
  return {'inputs': tokens[:, :-1], 'targets': tokens[:, 1:], 'weights': weights}


def sharded_state(model_cfg, mesh_shape: dict, tx=None, seed: int = 0,
                  devices=None):
  """(model, state, state_shardings, mesh, rules) for the mesh shape."""
  devices = jax.devices()[:int(np.prod(list(mesh_shape.values())))] \
      if devices is None else devices
  mesh = make_mesh(mesh_shape, devices)
  rules = rules_for_mesh(mesh_shape)
  model, _ = build_model(model_cfg, VOCAB)
  tx = tx or optax.adamw(1e-2)
  example = np.zeros((BATCH, SEQ), np.int32)
  state, shardings = create_train_state(model, tx, jax.random.PRNGKey(seed),
                                        example, mesh, rules)
  return model, state, shardings, mesh, rules


def place_batch(batch, mesh, rules):
  sharding = batch_sharding(mesh, rules)
  return {k: jax.device_put(v, sharding) for k, v in batch.items()}
