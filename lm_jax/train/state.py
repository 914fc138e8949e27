"""The train state (params + optimizer state + step + RNG), created sharded."""

from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh


class TrainState(flax.struct.PyTreeNode):
  """Everything a step updates; apply_fn and tx are static, not checkpointed."""
  step: jnp.ndarray
  params: Any
  opt_state: Any
  rng: jnp.ndarray
  apply_fn: Callable = flax.struct.field(pytree_node=False)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)


def _init_state(model: nn.Module, tx, rng, example_inputs_BxL, unbox: bool):
  params_rng, state_rng = jax.random.split(rng)
  params = model.init(params_rng, example_inputs_BxL)['params']
  if unbox:
    params = nn.meta.unbox(params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), rng=state_rng,
                    apply_fn=model.apply, tx=tx)


def state_shardings(model: nn.Module, tx, example_inputs_BxL, mesh: Mesh, rules):
  """NamedShardings of every state leaf, from the params' logical axis names."""
  boxed = jax.eval_shape(
      lambda rng: _init_state(model, tx, rng, example_inputs_BxL, unbox=False),
      jax.random.PRNGKey(0))
  logical_specs = nn.get_partition_spec(boxed)
  return nn.logical_to_mesh_sharding(logical_specs, mesh, rules)


def create_train_state(model: nn.Module, tx, rng, example_inputs_BxL,
                       mesh: Mesh, rules) -> tuple[TrainState, Any]:
  """Initialises the state directly in its sharded layout (never whole on one device)."""
  shardings = state_shardings(model, tx, example_inputs_BxL, mesh, rules)
  init = jax.jit(
      lambda rng: _init_state(model, tx, rng, example_inputs_BxL, unbox=True),
      out_shardings=shardings)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state = init(rng)
  return state, shardings


def abstract_train_state(model: nn.Module, tx, example_inputs_BxL, shardings):
  """ShapeDtypeStructs with target shardings: what a restore fills in."""
  shapes = jax.eval_shape(
      lambda rng: _init_state(model, tx, rng, example_inputs_BxL, unbox=True),
      jax.random.PRNGKey(0))
  return jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      shapes, shardings)
