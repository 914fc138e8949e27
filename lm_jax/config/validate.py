"""Checks a config before anything is built.

`validate(config, device_count=n)` raises ConfigError with one message that
names the key (as `config.section.key`, the spelling of the override that fixes
it), its value and what would be valid. It stops at the first problem.
`resolve_mesh_shape(config.mesh, n)` fills the -1 mesh axis.
"""

import importlib.util

import ml_collections

from lm_jax.config import defaults
from lm_jax.config import derived
from lm_jax.config.loader import ConfigError, _suggest, dotted_keys
from lm_jax.parallel.rules import MESH_AXES, rules_for_mesh

CHOICES = {
    'model.family': ('decoder',),
    'model.position': ('learned', 'rope'),
    'model.norm': ('layernorm', 'rmsnorm'),
    'model.mlp': ('gelu', 'swiglu'),
    'model.attention': ('auto', 'xla', 'cudnn'),
    'model.remat': ('none', 'full', 'dots_saveable', 'dots_with_no_batch_dims_saveable'),
    'model.param_dtype': ('float32', 'bfloat16'),
    'model.dtype': ('float32', 'bfloat16'),
    'data.tokenizer': ('byte', 'char', 'bpe'),
    'optimizer.name': ('adamw',),
    'optimizer.schedule': ('cosine', 'linear', 'constant'),
    'mesh.rules': ('auto', 'dp', 'fsdp', 'tp', 'fsdp_tp'),
    'logging.wandb_mode': ('online', 'offline', 'disabled'),
}

POSITIVE_INTS = (
    'model.vocab_multiple', 'model.num_layers', 'model.d_model', 'model.num_heads',
    'model.max_len', 'data.seq_len', 'train.steps', 'train.global_batch_size',
    'train.microbatches', 'train.eval_batches', 'train.log_every', 'checkpoint.keep',
    'mesh.pipeline_microbatches',
)

NON_NEGATIVE_INTS = (
    'model.vocab_size', 'model.num_kv_heads', 'model.head_dim', 'model.mlp_dim',
    'data.max_bytes', 'data.prefetch', 'optimizer.warmup_steps', 'optimizer.decay_steps',
    'train.eval_every', 'checkpoint.every',
)

# key -> (low, high, low_inclusive, high_inclusive); None = unbounded.
FLOAT_RANGES = {
    'model.dropout': (0.0, 1.0, True, False),
    'model.rope_theta': (0.0, None, False, None),
    'model.norm_eps': (0.0, None, False, None),
    'model.init_std': (0.0, None, False, None),
    'data.val_fraction': (0.0, 1.0, True, False),
    'optimizer.lr': (0.0, None, False, None),
    'optimizer.min_lr_ratio': (0.0, 1.0, True, True),
    'optimizer.b1': (0.0, 1.0, True, False),
    'optimizer.b2': (0.0, 1.0, True, False),
    'optimizer.eps': (0.0, None, False, None),
    'optimizer.weight_decay': (0.0, None, True, None),
    'optimizer.grad_clip': (0.0, None, True, None),
    'train.z_loss': (0.0, None, True, None),
    'logging.peak_flops_per_device': (0.0, None, True, None),
}

NON_EMPTY_STRS = ('data.source', 'data.file_glob', 'logging.run_dir')


def _get(config, key):
  node = config
  for part in key.split('.'):
    node = node[part]
  return node


def _fail(key, value, why):
  raise ConfigError(f'config.{key}={value!r}: {why}')


def _type_ok(value, like) -> bool:
  if isinstance(like, bool):
    return isinstance(value, bool)
  if isinstance(like, int):
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(like, float):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  return isinstance(value, type(like))


def _check_schema(config):
  """Every key of defaults.base_config() present with its type; no other keys."""
  schema = defaults.base_config()
  known = set(dotted_keys(schema))
  have = set(dotted_keys(config))
  for key in sorted(have - known):
    raise ConfigError(
        f'config.{key} is not a config key (it is not in lm_jax/config/defaults.py); '
        'a config file may only change existing keys.' + _suggest(key, schema))
  for key in sorted(known - have):
    raise ConfigError(f'config.{key} is missing; build configs from '
                      'lm_jax.config.defaults.base_config() and change only what differs')
  for key in sorted(known):
    value, like = _get(config, key), _get(schema, key)
    if not _type_ok(value, like):
      raise ConfigError(
          f'config.{key}={value!r} has type {type(value).__name__}, expected '
          f'{type(like).__name__} (default {like!r})')


def resolve_mesh_shape(mesh_cfg, device_count: int) -> dict:
  """{axis: size} for every mesh axis, the -1 axis filled; product == device_count."""
  sizes = {a: mesh_cfg.get(a, 1) for a in MESH_AXES}
  for axis, size in sizes.items():
    if isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != -1):
      _fail(f'mesh.{axis}', size, 'a mesh axis size must be a positive int, or -1 for '
            '"all devices not used by the other axes"')
  free = [a for a, s in sizes.items() if s == -1]
  shape = ', '.join(f'{a}={s}' for a, s in sizes.items())
  if len(free) > 1:
    raise ConfigError(
        f'config.mesh: {" and ".join(f"config.mesh.{a}" for a in free)} are -1 ({shape}); '
        'at most one axis may be -1 ("the rest of the devices"); give the others a size, e.g. '
        + ' '.join(f'--config.mesh.{a}=1' for a in free[1:]))
  fixed = 1
  for s in sizes.values():
    if s != -1:
      fixed *= s
  if free:
    if device_count % fixed:
      raise ConfigError(
          f'config.mesh ({shape}): the fixed axes use {fixed} devices, which does not divide '
          f'the {device_count} available devices, so config.mesh.{free[0]}=-1 cannot be '
          f'filled; choose sizes whose product divides {device_count}')
    sizes[free[0]] = device_count // fixed
  elif fixed != device_count:
    others = ' '.join(f'--config.mesh.{a}=1' for a in MESH_AXES[1:] if sizes[a] != 1)
    raise ConfigError(
        f'config.mesh ({shape}): the mesh has data*stage*fsdp*sequence*tensor = {fixed} devices but '
        f'{device_count} devices are available; the product must equal the device count. '
        f'Set one axis to -1 to use all devices, e.g. --config.mesh.data=-1'
        + (f' (with {others})' if others else ''))
  return sizes


def validate(config: ml_collections.ConfigDict, *, device_count: int,
             process_count: int = 1) -> None:
  """Raises ConfigError for the first invalid value in `config`; returns None if all is well."""
  _check_schema(config)
  m, d, o, t = config.model, config.data, config.optimizer, config.train

  for key, choices in CHOICES.items():
    value = _get(config, key)
    if value not in choices:
      _fail(key, value, 'not a valid choice; choose one of ' + ', '.join(map(repr, choices)))
  for key in POSITIVE_INTS:
    value = _get(config, key)
    if value < 1:
      _fail(key, value, 'must be a positive int (>= 1)')
  for key in NON_NEGATIVE_INTS:
    value = _get(config, key)
    if value < 0:
      meaning = ' (0 means "derive it")' if key.startswith('model.') else ''
      _fail(key, value, f'must be >= 0{meaning}')
  for key, (lo, hi, lo_in, hi_in) in FLOAT_RANGES.items():
    value = _get(config, key)
    ok = value == value  # not nan
    ok = ok and (lo is None or value > lo or (lo_in and value == lo))
    ok = ok and (hi is None or value < hi or (hi_in and value == hi))
    if not ok:
      left = '-inf' if lo is None else f'{"[" if lo_in else "("}{lo:g}'
      right = 'inf)' if hi is None else f'{hi:g}{"]" if hi_in else ")"}'
      _fail(key, value, f'must be in {left}, {right}')
  for key in NON_EMPTY_STRS:
    if not _get(config, key):
      _fail(key, _get(config, key), 'must not be empty')
  _check_profile_steps(config.logging.profile_steps)
  if config.logging.wandb_project and importlib.util.find_spec('wandb') is None:
    _fail('logging.wandb_project', config.logging.wandb_project,
          "W&B logging needs the wandb package: pip install -e '.[wandb]' (or set it to '')")

  # --- model shape
  if not m.head_dim and m.d_model % m.num_heads:
    _fail('model.d_model', m.d_model,
          f'not divisible by config.model.num_heads={m.num_heads} (with config.model.head_dim=0 '
          'the head size is d_model // num_heads); pick num_heads dividing d_model or set '
          'config.model.head_dim')
  kv = derived.num_kv_heads(m)
  if kv > m.num_heads or m.num_heads % kv:
    _fail('model.num_kv_heads', m.num_kv_heads,
          f'config.model.num_heads={m.num_heads} must be a multiple of num_kv_heads (GQA: each '
          f'kv head serves num_heads // num_kv_heads query heads); use a divisor of '
          f'{m.num_heads}, or 0 for num_kv_heads = num_heads')
  if m.position == 'rope' and derived.head_dim(m) % 2:
    _fail('model.head_dim', derived.head_dim(m),
          'rope rotates pairs of features, so the head size must be even')
  if m.attention == 'cudnn' and m.dtype != 'bfloat16':
    _fail('model.attention', m.attention,
          f'cudnn attention needs config.model.dtype=\'bfloat16\' (it is {m.dtype!r}); '
          "use config.model.attention='auto' or 'xla' for float32")
  if d.seq_len > m.max_len:
    _fail('data.seq_len', d.seq_len,
          f'longer than config.model.max_len={m.max_len}, the positions the model supports; '
          f'raise config.model.max_len to at least {d.seq_len} or lower data.seq_len')
  if d.tokenizer == 'bpe' and m.vocab_size and m.vocab_size < d.bpe_vocab_size:
    _fail('model.vocab_size', m.vocab_size,
          f'smaller than the tokenizer\'s config.data.bpe_vocab_size={d.bpe_vocab_size}; '
          'use 0 to take the vocabulary size from the tokenizer')
  if d.tokenizer == 'bpe' and d.bpe_vocab_size < 1:
    _fail('data.bpe_vocab_size', d.bpe_vocab_size, 'must be a positive int with the bpe tokenizer')

  # --- optimizer schedule
  if o.schedule != 'constant':
    decay = o.decay_steps or t.steps
    what = (f'config.optimizer.decay_steps={o.decay_steps}' if o.decay_steps
            else f'config.train.steps={t.steps} (decay_steps=0 means train.steps)')
    if o.warmup_steps > decay:
      _fail('optimizer.warmup_steps', o.warmup_steps,
            f'longer than the {o.schedule} decay, {what}; warmup must end before the decay does '
            f'(use warmup_steps <= {decay}, or schedule=\'constant\')')

  # --- train
  if t.global_batch_size % t.microbatches:
    _fail('train.global_batch_size', t.global_batch_size,
          f'not divisible by config.train.microbatches={t.microbatches} (the batch is split into '
          'that many equal gradient-accumulation pieces)')
  if t.eval_every and d.val_fraction == 0:
    _fail('train.eval_every', t.eval_every,
          'evaluation needs a validation split but config.data.val_fraction=0; set '
          'val_fraction > 0 or train.eval_every=0 (no evaluation)')
  if process_count < 1 or t.global_batch_size % process_count:
    _fail('train.global_batch_size', t.global_batch_size,
          f'not divisible by the {process_count} processes (each loads an equal share)')

  # --- mesh and sharding
  shape = resolve_mesh_shape(config.mesh, device_count)
  rules_for_mesh(shape, config.mesh.rules)  # raises if the table leaves an axis idle
  batch_parallel = shape['data'] * shape['fsdp']
  micro = t.global_batch_size // t.microbatches
  if micro % batch_parallel:
    _fail('train.global_batch_size', t.global_batch_size,
          f'each microbatch has global_batch_size / microbatches = {t.global_batch_size} / '
          f'{t.microbatches} = {micro} sequences, which must be divisible by the batch-parallel '
          f'size data*fsdp = {shape["data"]}*{shape["fsdp"]} = {batch_parallel} (mesh {shape}); '
          f'use a global_batch_size that is a multiple of {t.microbatches * batch_parallel}')
  _check_pipeline(config, shape, micro, batch_parallel)
  tp = shape['tensor']
  if tp > 1:
    split = f'tensor parallelism splits it over the config.mesh.tensor={tp} devices'
    if m.num_heads % tp:
      _fail('model.num_heads', m.num_heads,
            f'not divisible by config.mesh.tensor={tp}: {split} (each device gets whole '
            f'attention heads); use a multiple of {tp} or a smaller mesh.tensor')
    if kv % tp:
      _fail('model.num_kv_heads', m.num_kv_heads,
            f'{kv} kv heads are not divisible by config.mesh.tensor={tp}: {split} (each device '
            f'gets whole kv heads); use a multiple of {tp} kv heads or a smaller mesh.tensor')
    mlp = derived.mlp_dim(m)
    if mlp % tp:
      _fail('model.mlp_dim', m.mlp_dim,
            f'the MLP width {mlp} is not divisible by config.mesh.tensor={tp}: {split}; '
            f'use an mlp_dim that is a multiple of {tp}')
    if m.vocab_size:
      vocab = derived.padded_vocab_size(m.vocab_size, m.vocab_multiple)
      if vocab % tp:
        _fail('model.vocab_multiple', m.vocab_multiple,
              f'the padded vocabulary {vocab} (config.model.vocab_size={m.vocab_size} rounded up '
              f'to a multiple of vocab_multiple) is not divisible by config.mesh.tensor={tp}: '
              f'{split}; use a vocab_multiple that is a multiple of {tp} (e.g. 64)')
    elif m.vocab_multiple % tp:
      _fail('model.vocab_multiple', m.vocab_multiple,
            f'not a multiple of config.mesh.tensor={tp}, so the padded vocabulary (the '
            f'tokenizer\'s size rounded up to vocab_multiple) may not split over the tensor '
            f'devices; use a multiple of {tp} (e.g. 64)')
  if shape['fsdp'] > 1 and m.d_model % shape['fsdp']:
    _fail('model.d_model', m.d_model,
          f'not divisible by config.mesh.fsdp={shape["fsdp"]}: fsdp shards the embed dimension '
          'of the parameters over the fsdp devices')


def _check_profile_steps(steps):
  """() or (start, stop) / (step,): positive step numbers, start <= stop."""
  ints = all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in steps)
  if len(steps) > 2 or not ints or (len(steps) == 2 and steps[0] > steps[1]):
    _fail('logging.profile_steps', steps,
          'give (start, stop), the first and last step to trace (1-based, start <= stop, e.g. '
          '--config.logging.profile_steps=3,5), one step (e.g. 3), or () for no trace')


def _check_pipeline(config, shape, micro: int, batch_parallel: int):
  """Stages hold whole layers; each pipeline microbatch splits over data*fsdp."""
  stages, pm = shape['stage'], config.mesh.pipeline_microbatches
  if stages == 1:
    return
  if config.mesh.stage == -1:
    _fail('mesh.stage', -1, 'the pipeline stage count shapes the params ([stage, '
          'layers/stage, ...]), so give it explicitly; let another axis be -1')
  layers = config.model.num_layers
  if layers % stages:
    _fail('model.num_layers', layers,
          f'not divisible by config.mesh.stage={stages}: each pipeline stage holds '
          f'num_layers / stage whole layers; use a multiple of {stages} layers')
  if micro % pm or (micro // pm) % batch_parallel:
    _fail('mesh.pipeline_microbatches', pm,
          f'each gradient-accumulation microbatch of {micro} sequences (global_batch_size / '
          f'train.microbatches) is split into {pm} pipeline microbatches, each of which must '
          f'split evenly over data*fsdp = {batch_parallel}; use a pipeline_microbatches '
          f'dividing {micro} with {micro} / pipeline_microbatches a multiple of '
          f'{batch_parallel}')
