"""Putting streamed host arrays straight into their sharded device arrays, and the fresh state.

Each leaf is cast to its param dtype and handed to
`jax.make_array_from_callback`, which copies to every addressable device just
its shard; the host copy is dropped before the next leaf is read, so host
memory holds one leaf at a time (plus what the devices themselves hold, which
on CPU is host memory too).
"""

from typing import Iterator, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.train.state import TrainState


def flatten(tree: Mapping, prefix: tuple = ()) -> dict[tuple, object]:
  """{path: leaf} of a nested dict."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(flatten(value, prefix + (key,)))
    else:
      flat[prefix + (key,)] = value
  return flat


def _unflatten(flat: dict[tuple, object]) -> dict:
  tree = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def place_params(leaves: Iterator[tuple[tuple, np.ndarray]], abstract_params: Mapping) -> dict:
  """The params tree of jax.Arrays, each leaf placed on its target sharding as it arrives.

  abstract_params: ShapeDtypeStructs with shardings (Built.abstract_state().params);
  `leaves` must give every one of them once, in its shape (tensor_check verified it).
  """
  targets = flatten(abstract_params)
  placed = {}
  for path, array in leaves:
    target = targets[path]
    host = np.asarray(array, dtype=target.dtype)
    placed[path] = jax.make_array_from_callback(
        target.shape, target.sharding, lambda index, host=host: host[index])
    del host, array
  return _unflatten(placed)


def fresh_state(built, params: dict) -> TrainState:
  """Step 0, the optimizer's initial state and the train seed's RNG around `params`."""
  shardings = built.state_shardings
  with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    opt_state = jax.jit(built.tx.init, out_shardings=shardings.opt_state)(params)
  # The same split as a fresh run's init (train/state.py): the second key is the state's.
  _, state_rng = jax.random.split(jax.random.PRNGKey(built.config.train.seed))
  return TrainState(step=jax.device_put(jnp.zeros((), jnp.int32), shardings.step),
                    params=params, opt_state=opt_state,
                    rng=jax.device_put(state_rng, shardings.rng),
                    apply_fn=built.fns.apply, tx=built.tx)
