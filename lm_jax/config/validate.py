"""Checks a config before anything is built.

`validate(config, device_count=n)` raises ConfigError with one message that
names the key (as `config.section.key`, the spelling of the override that fixes
it), its value and what would be valid. It stops at the first problem.
`resolve_mesh_shape(config.mesh, n)` fills the -1 mesh axis.
"""

import importlib.util

import ml_collections

from lm_jax.config import defaults
from lm_jax.config.loader import ConfigError, _suggest, dotted_keys
from lm_jax.errors import refuse_key
from lm_jax.parallel.rules import MESH_AXES, rules_for_mesh

CHOICES = {
    'model.position': ('learned', 'rope'),
    'model.norm': ('layernorm', 'rmsnorm'),
    'model.mlp': ('gelu', 'swiglu'),
    'model.attention': ('auto', 'xla', 'cudnn', 'blockwise'),
    'model.remat': ('none', 'full', 'dots_saveable', 'dots_with_no_batch_dims_saveable'),
    'model.param_dtype': ('float32', 'bfloat16'),
    'model.dtype': ('float32', 'bfloat16'),
    'data.tokenizer': ('byte', 'char', 'bpe', 'pretrained'),
    'data.format': ('auto', 'text', 'jsonl', 'parquet', 'hf'),
    'data.utf8_errors': ('replace', 'skip', 'error'),
    'data.separator': ('auto', 'eos', 'bos', 'bos_eos', 'blank_line'),
    'data.split_by': ('tail', 'document'),
    'optimizer.name': ('adamw',),
    'optimizer.schedule': ('cosine', 'linear', 'constant'),
    'mesh.rules': ('auto', 'dp', 'fsdp', 'tp', 'fsdp_tp'),
    # The metrics of lm_jax.evaluate.eval_metrics; all are lower-is-better.
    'train.early_stop_metric': ('loss', 'perplexity', 'bits_per_byte'),
    'logging.wandb_mode': ('online', 'offline', 'disabled'),
}

POSITIVE_INTS = (
    'model.vocab_multiple', 'model.num_layers', 'model.d_model', 'model.num_heads',
    'model.max_len', 'data.seq_len', 'train.steps', 'train.global_batch_size',
    'train.microbatches', 'train.eval_batches', 'train.log_every', 'checkpoint.keep',
    'mesh.pipeline_microbatches', 'data.prepare_workers', 'data.chunk_mb',
)

NON_NEGATIVE_INTS = (
    'model.vocab_size', 'model.num_kv_heads', 'model.head_dim', 'model.mlp_dim',
    'data.max_bytes', 'data.prefetch', 'optimizer.warmup_steps', 'optimizer.decay_steps',
    'train.eval_every', 'checkpoint.every', 'train.early_stop_patience',
    'data.target_len',
    'objective.teacher_step',
)

# key -> (low, high, low_inclusive, high_inclusive); None = unbounded.
FLOAT_RANGES = {
    'model.dropout': (0.0, 1.0, True, False),
    'model.rope_theta': (0.0, None, False, None),
    'model.norm_eps': (0.0, None, False, None),
    'model.init_std': (0.0, None, False, None),
    'data.val_fraction': (0.0, 1.0, True, False),
    'data.test_fraction': (0.0, 1.0, True, False),
    'data.mlm_probability': (0.0, 1.0, False, True),
    'data.noise_density': (0.0, 1.0, False, False),
    'data.mean_noise_span_length': (1.0, None, True, None),
    'optimizer.lr': (0.0, None, False, None),
    'optimizer.min_lr_ratio': (0.0, 1.0, True, True),
    'optimizer.b1': (0.0, 1.0, True, False),
    'optimizer.b2': (0.0, 1.0, True, False),
    'optimizer.eps': (0.0, None, False, None),
    'optimizer.weight_decay': (0.0, None, True, None),
    'optimizer.l1': (0.0, None, True, None),
    'optimizer.l2': (0.0, None, True, None),
    'optimizer.grad_clip': (0.0, None, True, None),
    'objective.z_loss': (0.0, None, True, None),
    'objective.label_smoothing': (0.0, 1.0, True, False),
    'objective.temperature': (0.0, None, False, None),
    'objective.kl_weight': (0.0, 1.0, True, True),
    'train.early_stop_min_delta': (0.0, None, True, None),
    'logging.peak_flops_per_device': (0.0, None, True, None),
}

NON_EMPTY_STRS = ('data.source', 'data.file_glob', 'logging.run_dir', 'data.text_field')


def _get(config, key):
  node = config
  for part in key.split('.'):
    node = node[part]
  return node


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
      refuse_key(f'mesh.{axis}', size, 'a mesh axis size must be a positive int, or -1 for '
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


def validate(config: ml_collections.ConfigDict, *, device_count: int) -> None:
  """Raises ConfigError for the first invalid value in `config`; returns None if all is well."""
  _check_schema(config)
  m, d, o, t = config.model, config.data, config.optimizer, config.train

  for key, choices in CHOICES.items():
    value = _get(config, key)
    if value not in choices:
      refuse_key(key, value, 'not a valid choice; choose one of ' + ', '.join(map(repr, choices)))
  for key in POSITIVE_INTS:
    value = _get(config, key)
    if value < 1:
      refuse_key(key, value, 'must be a positive int (>= 1)')
  for key in NON_NEGATIVE_INTS:
    value = _get(config, key)
    if value < 0:
      meaning = ' (0 means "derive it")' if key.startswith('model.') else ''
      refuse_key(key, value, f'must be >= 0{meaning}')
  for key, (lo, hi, lo_in, hi_in) in FLOAT_RANGES.items():
    value = _get(config, key)
    ok = value == value  # not nan
    ok = ok and (lo is None or value > lo or (lo_in and value == lo))
    ok = ok and (hi is None or value < hi or (hi_in and value == hi))
    if not ok:
      left = '-inf' if lo is None else f'{"[" if lo_in else "("}{lo:g}'
      right = 'inf)' if hi is None else f'{hi:g}{"]" if hi_in else ")"}'
      refuse_key(key, value, f'must be in {left}, {right}')
  for key in NON_EMPTY_STRS:
    if not _get(config, key):
      refuse_key(key, _get(config, key), 'must not be empty')
  _check_profile_steps(config.logging.profile_steps)
  _check_beams(config.sample)
  if config.logging.wandb_project and importlib.util.find_spec('wandb') is None:
    refuse_key('logging.wandb_project', config.logging.wandb_project,
          "W&B logging needs the wandb package: pip install -e '.[wandb]' (or set it to '')")

  family = _check_family(config)
  from lm_jax.objectives.registry import validate_objective  # pylint: disable=g-import-not-at-top
  validate_objective(config.objective, defaults.base_config().objective)
  if d.tokenizer == 'bpe' and m.vocab_size and m.vocab_size < d.bpe_vocab_size:
    refuse_key('model.vocab_size', m.vocab_size,
          f'smaller than the tokenizer\'s config.data.bpe_vocab_size={d.bpe_vocab_size}; '
          'use 0 to take the vocabulary size from the tokenizer')
  if d.val_fraction + d.test_fraction >= 1.0:
    refuse_key('data.test_fraction', d.test_fraction,
          f'with config.data.val_fraction={d.val_fraction} nothing is left to train on; '
          'val_fraction + test_fraction must be < 1')
  if d.tokenizer == 'pretrained' and not d.tokenizer_path:
    refuse_key('data.tokenizer_path', d.tokenizer_path, "data.tokenizer='pretrained' needs a local "
          'tokenizer.json (or a directory holding one) or a SentencePiece .model file')
  if d.tokenizer != 'pretrained' and d.tokenizer_path:
    refuse_key('data.tokenizer_path', d.tokenizer_path,
          f"only data.tokenizer='pretrained' reads it (data.tokenizer={d.tokenizer!r}); set '' ")
  if d.tokenizer == 'bpe' and d.bpe_vocab_size < 1:
    refuse_key('data.bpe_vocab_size', d.bpe_vocab_size, 'must be a positive int with the bpe tokenizer')

  # --- optimizer schedule
  if o.schedule != 'constant':
    decay = o.decay_steps or t.steps
    what = (f'config.optimizer.decay_steps={o.decay_steps}' if o.decay_steps
            else f'config.train.steps={t.steps} (decay_steps=0 means train.steps)')
    if o.warmup_steps > decay:
      refuse_key('optimizer.warmup_steps', o.warmup_steps,
            f'longer than the {o.schedule} decay, {what}; warmup must end before the decay does '
            f'(use warmup_steps <= {decay}, or schedule=\'constant\')')

  # --- train
  if t.global_batch_size % t.microbatches:
    refuse_key('train.global_batch_size', t.global_batch_size,
          f'not divisible by config.train.microbatches={t.microbatches} (the batch is split into '
          'that many equal gradient-accumulation pieces)')
  if t.eval_every and d.val_fraction == 0:
    refuse_key('train.eval_every', t.eval_every,
          'evaluation needs a validation split but config.data.val_fraction=0; set '
          'val_fraction > 0 or train.eval_every=0 (no evaluation)')
  if t.early_stop_patience and not t.eval_every:
    refuse_key('train.early_stop_patience', t.early_stop_patience,
          'early stopping counts evaluations but config.train.eval_every=0 (none); '
          'set train.eval_every > 0 or early_stop_patience=0')

  # --- mesh and sharding
  shape = resolve_mesh_shape(config.mesh, device_count)
  rules_for_mesh(shape, config.mesh.rules)  # raises if the table leaves an axis idle
  batch_parallel = shape['data'] * shape['fsdp']
  micro = t.global_batch_size // t.microbatches
  if micro % batch_parallel:
    refuse_key('train.global_batch_size', t.global_batch_size,
          f'each microbatch has global_batch_size / microbatches = {t.global_batch_size} / '
          f'{t.microbatches} = {micro} sequences, which must be divisible by the batch-parallel '
          f'size data*fsdp = {shape["data"]}*{shape["fsdp"]} = {batch_parallel} (mesh {shape}); '
          f'use a global_batch_size that is a multiple of {t.microbatches * batch_parallel}')
  if shape['stage'] > 1 and not family.pipeline:
    refuse_key('mesh.stage', config.mesh.stage,
          f'config.model.family={family.name!r} cannot split its layers into pipeline '
          'stages; use mesh.stage=1')
  family.validate(config, shape)
  if d.tokenizer == 'byte':  # its size is fixed: refuse before any data is written
    from lm_jax.data.tokenizers import ByteTokenizer  # pylint: disable=g-import-not-at-top
    check_vocab_size(m, 'byte', ByteTokenizer.vocab_size)


def _check_family(config):
  """The family exists, its task is one it trains on, and keys it ignores are unchanged."""
  from lm_jax.data.tasks import TASK_NAMES  # pylint: disable=g-import-not-at-top
  from lm_jax.models.registry import get_family  # pylint: disable=g-import-not-at-top
  family = get_family(config.model.family)
  task = config.data.task or family.tasks[0]
  if task not in TASK_NAMES:
    refuse_key('data.task', config.data.task, 'not a task; choose one of '
          + ', '.join(map(repr, TASK_NAMES)) + " or '' (the family's default)")
  if task not in family.tasks:
    refuse_key('data.task', config.data.task,
          f'config.model.family={family.name!r} trains on the tasks '
          + ', '.join(map(repr, family.tasks)))
  schema = defaults.base_config().model
  for key in schema.keys():
    if isinstance(schema[key], ml_collections.ConfigDict):  # a family's own section
      if key == family.name:
        continue
      for sub in schema[key].keys():
        if config.model[key][sub] != schema[key][sub]:
          refuse_key(f'model.{key}.{sub}', config.model[key][sub],
                f'only config.model.family={key!r} reads it, but the family is '
                f'{family.name!r}; leave it at its default {schema[key][sub]!r}')
    elif key not in family.shared_keys and key != 'family' and config.model[key] != schema[key]:
      refuse_key(f'model.{key}', config.model[key],
            f'config.model.family={family.name!r} does not use it; leave it at its '
            f'default {schema[key]!r}')
  return family


def check_vocab_size(model_cfg, tokenizer_kind: str, tokenizer_vocab_size: int) -> None:
  """Raises ConfigError if model.vocab_size (when set) cannot embed every token id.

  Only known once the data (and so the tokenizer) is built: build_run calls it.
  """
  size = model_cfg.vocab_size
  if size and size < tokenizer_vocab_size:
    refuse_key('model.vocab_size', size,
          f'smaller than the {tokenizer_kind} tokenizer\'s vocabulary of '
          f'{tokenizer_vocab_size} tokens (ids up to {tokenizer_vocab_size - 1} would '
          f'index past the embedding); use config.model.vocab_size=0 to take it from the '
          f'tokenizer, or at least {tokenizer_vocab_size}')


# config.sample keys beam search does not read: each must stay "off" (its default).
_SAMPLER_FILTERS = (('top_k', 0), ('top_p', 1.0), ('min_p', 0.0), ('repetition_penalty', 1.0))


def _check_beams(s):
  """sample.num_beams >= 1; beam search (> 1) takes no sampler filters, and only beam
  search reads sample.length_penalty."""
  if s.num_beams < 1:
    refuse_key('sample.num_beams', s.num_beams,
               'must be a positive int: 1 (off: sample with config.sample.temperature ...) '
               'or the number of beams (> 1: beam search)')
  if s.length_penalty != s.length_penalty:  # nan
    refuse_key('sample.length_penalty', s.length_penalty, 'must be a number (1.0: the mean '
               'log-probability per token, 0.0: the sum)')
  if s.num_beams == 1:
    if s.length_penalty != 1.0:
      refuse_key('sample.length_penalty', s.length_penalty,
                 'only beam search reads it, but config.sample.num_beams=1 (off); set '
                 'num_beams > 1 or leave length_penalty at 1.0')
    return
  for key, off in _SAMPLER_FILTERS:
    if s[key] != off:
      refuse_key(f'sample.{key}', s[key],
                 f'beam search (config.sample.num_beams={s.num_beams}) does not sample; '
                 f'leave it at {off!r} or set num_beams=1')


def _check_profile_steps(steps):
  """() or (start, stop) / (step,): positive step numbers, start <= stop."""
  ints = all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in steps)
  if len(steps) > 2 or not ints or (len(steps) == 2 and steps[0] > steps[1]):
    refuse_key('logging.profile_steps', steps,
          'give (start, stop), the first and last step to trace (1-based, start <= stop, e.g. '
          '--config.logging.profile_steps=3,5), one step (e.g. 3), or () for no trace')
