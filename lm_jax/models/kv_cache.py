"""The key/value cache of self-attention while decoding (flax's `cache` collection).

A module in decode mode keeps, per attention layer, `cached_key` and `cached_value`
[B, S, K, H] for S cache slots and the `cache_index` of the next free slot. A call
with T new tokens writes their keys/values at slots [index, index + T) and
attends over all S slots; which slots a query may see is the caller's mask
(masks are data: lm_jax/models/decoder/decoding.py builds it from the rows'
padding and the slot reached). The cache's shape is fixed by the first call
(`init` with S tokens), so every decoding step has one compiled shape.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

KV_AXES = ('batch', 'act_kv_length', 'act_heads', None)


def cached_keys_values(module: nn.Module, k_BxTxKxH, v_BxTxKxH):
  """Writes this call's keys/values into `module`'s cache; returns the whole cache [B, S, K, H].

  While the cache is being created (`init`), T is the cache's length S and the
  keys/values themselves are returned.
  """
  creating = not module.has_variable('cache', 'cached_key')
  key = module.variable('cache', 'cached_key', jnp.zeros, k_BxTxKxH.shape, k_BxTxKxH.dtype)
  value = module.variable('cache', 'cached_value', jnp.zeros, v_BxTxKxH.shape, v_BxTxKxH.dtype)
  index = module.variable('cache', 'cache_index', lambda: jnp.zeros((), jnp.int32))
  if creating:
    return k_BxTxKxH, v_BxTxKxH
  at = (0, index.value, 0, 0)
  key.value = nn.with_logical_constraint(
      jax.lax.dynamic_update_slice(key.value, k_BxTxKxH.astype(key.value.dtype), at), KV_AXES)
  value.value = nn.with_logical_constraint(
      jax.lax.dynamic_update_slice(value.value, v_BxTxKxH.astype(value.value.dtype), at),
      KV_AXES)
  index.value = index.value + k_BxTxKxH.shape[1]
  return key.value, value.value
