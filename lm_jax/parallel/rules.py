"""Logical axis names -> mesh axes, one table per parallelism strategy.

Models name axes ('embed', 'heads', ...); these tables say which mesh axis
splits each name. Parameter names and activation names ('act_*') are kept
apart so that FSDP can shard a weight's `embed` dim while activations keep
theirs whole. A name mapped to None is replicated.
"""

from lm_jax.errors import ConfigError

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

# Outer to inner: `tensor` varies fastest, so it lands on the closest devices.
MESH_AXES = ('data', 'stage', 'fsdp', 'sequence', 'tensor')

# Names that no strategy here splits (kept explicit so every name is in a table).
_REPLICATED = (('head_dim', None), ('norm', None), ('positions', None),
               ('layers', None), ('act_embed', None), ('act_kv_length', None))

_TENSOR = (('heads', 'tensor'), ('kv_heads', 'tensor'), ('mlp', 'tensor'),
           ('vocab', 'tensor'), ('act_heads', 'tensor'), ('act_mlp', 'tensor'),
           ('act_vocab', 'tensor'))
_NO_TENSOR = tuple((name, None) for name, _ in _TENSOR)

RULE_TABLES: dict[str, Rules] = {
    # Data parallel: params replicated, batch split.
    'dp': (('batch', 'data'), ('embed', None)) + _NO_TENSOR + _REPLICATED,
    # ZeRO-3: batch split over data and fsdp; every weight's embed dim split
    # over fsdp and all-gathered just in time inside the step.
    'fsdp': (('batch', ('data', 'fsdp')), ('embed', 'fsdp'))
            + _NO_TENSOR + _REPLICATED,
    # Megatron: heads and MLP hidden split over tensor; vocab too.
    'tp': (('batch', 'data'), ('embed', None)) + _TENSOR + _REPLICATED,
    'fsdp_tp': (('batch', ('data', 'fsdp')), ('embed', 'fsdp'))
               + _TENSOR + _REPLICATED,
}

_AXES_USED = {'dp': {'data'}, 'fsdp': {'data', 'fsdp'}, 'tp': {'data', 'tensor'},
              'fsdp_tp': {'data', 'fsdp', 'tensor'}}


def _orthogonal_rules(mesh_shape: dict[str, int]) -> Rules:
  """Sequence and pipeline axes compose with every table.

  Sequence parallelism (Megatron-SP): activations outside attention are split
  along `length`; attention gathers keys/values (`act_kv_length`) whole.
  Pipeline: the stacked layers' leading `stage` dim is split over `stage`.
  """
  length = 'sequence' if mesh_shape.get('sequence', 1) > 1 else None
  stage = 'stage' if mesh_shape.get('stage', 1) > 1 else None
  return (('length', length), ('stage', stage))


def _token_rule(table: Rules, mesh_shape: dict[str, int]) -> Rules:
  """`act_tokens`: the [B * L] rows of flattened activations, split over the
  batch axes and then `sequence` (batch-major, as the reshape lays them out)."""
  batch = dict(table)['batch']
  axes = (batch,) if isinstance(batch, str) else tuple(batch or ())
  if mesh_shape.get('sequence', 1) > 1:
    axes += ('sequence',)
  return (('act_tokens', axes or None),)


def rules_for_mesh(mesh_shape: dict[str, int], name: str = 'auto') -> Rules:
  """The table named `name`, or for 'auto' the smallest one using every axis > 1,
  plus the sequence / stage / token-row rules."""
  table = _table(mesh_shape, name)
  return table + _orthogonal_rules(mesh_shape) + _token_rule(table, mesh_shape)


def _table(mesh_shape: dict[str, int], name: str) -> Rules:
  busy = {axis for axis, size in mesh_shape.items()
          if size > 1 and axis not in ('sequence', 'stage')}
  if name == 'auto':
    for candidate in ('dp', 'fsdp', 'tp', 'fsdp_tp'):
      if busy <= _AXES_USED[candidate]:
        return RULE_TABLES[candidate]
  if name not in RULE_TABLES:
    raise ConfigError(f"config.mesh.rules={name!r} is not a rule table; valid: "
                      f"'auto', {', '.join(map(repr, RULE_TABLES))}")
  unused = busy - _AXES_USED[name]
  if unused:
    raise ConfigError(
        f'config.mesh.rules={name!r} does not use mesh axes {sorted(unused)} '
        f'(sizes {[mesh_shape[a] for a in sorted(unused)]}): those devices '
        "would repeat the same work. Set them to 1 or use mesh.rules='auto'.")
  return RULE_TABLES[name]
