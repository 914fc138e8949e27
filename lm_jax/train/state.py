"""The train state (params + optimizer state + step + RNG), created sharded."""

from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from lm_jax.models.registry import ModelFns


class TrainState(flax.struct.PyTreeNode):
  """Everything a step updates; apply_fn and tx are static, not checkpointed."""
  step: jnp.ndarray
  params: Any
  opt_state: Any
  rng: jnp.ndarray
  apply_fn: Callable = flax.struct.field(pytree_node=False)  # (variables, batch, ...) -> outputs
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  def to_tree(self) -> dict:
    """The arrays as a plain dict (what a checkpoint holds; apply_fn and tx are code)."""
    return {'step': self.step, 'params': self.params, 'opt_state': self.opt_state,
            'rng': self.rng}

  def from_tree(self, tree: dict) -> 'TrainState':
    """This state with the arrays of `tree` (as written by to_tree)."""
    return self.replace(step=tree['step'], params=tree['params'],
                        opt_state=tree['opt_state'], rng=tree['rng'])


def _init_state(fns: ModelFns, tx, rng, example_batch, unbox: bool):
  params_rng, state_rng = jax.random.split(rng)
  params = fns.init(params_rng, example_batch)['params']
  if unbox:
    params = nn.meta.unbox(params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), rng=state_rng,
                    apply_fn=fns.apply, tx=tx)


def state_shardings(fns: ModelFns, tx, example_batch, mesh: Mesh, rules):
  """NamedShardings of every state leaf, from the params' logical axis names."""
  boxed = jax.eval_shape(lambda rng: _init_state(fns, tx, rng, example_batch, unbox=False),
                         jax.random.PRNGKey(0))
  logical_specs = nn.get_partition_spec(boxed)
  return nn.logical_to_mesh_sharding(logical_specs, mesh, rules)


def create_train_state(fns: ModelFns, tx, rng, example_batch, mesh: Mesh, rules,
                       shardings=None) -> tuple[TrainState, Any]:
  """Initialises the state directly in its sharded layout (never whole on one device)."""
  if shardings is None:
    shardings = state_shardings(fns, tx, example_batch, mesh, rules)
  init = jax.jit(lambda rng: _init_state(fns, tx, rng, example_batch, unbox=True),
                 out_shardings=shardings)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state = init(rng)
  return state, shardings


def abstract_train_state(fns: ModelFns, tx, example_batch, shardings):
  """ShapeDtypeStructs with target shardings: what a restore fills in."""
  shapes = jax.eval_shape(lambda rng: _init_state(fns, tx, rng, example_batch, unbox=True),
                          jax.random.PRNGKey(0))
  return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
                      shapes, shardings)
