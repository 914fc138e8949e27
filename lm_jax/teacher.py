"""The teacher of a distillation run (config.objective.teacher_run): any lm_jax checkpoint
whose vocabulary is the student's.

`build_teacher` (lm_jax/build.py calls it) reads the teacher's saved config and
builds its model on the *student's* mesh and rules, so its params are sharded
like the student's. `restore_teacher` (lm_jax/run.py) restores its params
alone, read-only: nothing in the teacher's run directory is written. The
params stay out of the student's train state (no optimizer state, no
gradient); the steps take them as one more argument (lm_jax/objectives/teacher.py).
"""

import os

import ml_collections

from lm_jax.build import build, task_of
from lm_jax.checkpoint import Checkpointer, has_checkpoint
from lm_jax.config import defaults
from lm_jax.config.loader import dotted_keys
from lm_jax.data import special_tokens, tokenizers
from lm_jax.errors import ConfigError
from lm_jax.objectives.teacher import Teacher

_KEY = 'config.objective.teacher_run'
# What the teacher keeps of its own data config: what fixes its vocabulary and task.
_TEACHER_DATA_KEYS = ('tokenizer', 'bpe_vocab_size', 'task')


def _flatten(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def saved_run_config(saved: dict, where: str) -> ml_collections.ConfigDict:
  """A checkpoint's saved config (JSON) as a full config; keys it lacks keep their defaults."""
  config = defaults.base_config()
  known = set(dotted_keys(config))
  for key, value in _flatten(saved).items():
    if key not in known:
      raise ConfigError(f'{where}: its saved config has config.{key}, which this lm_jax '
                        'does not know; use a checkpoint of this version')
    *path, leaf = key.split('.')
    node = config
    for part in path:
      node = node[part]
    if isinstance(node[leaf], tuple) and isinstance(value, list):  # JSON has no tuples
      value = tuple(value)
    node[leaf] = value
  return config


def _teacher_config(student: ml_collections.ConfigDict,
                    saved: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The teacher's model (and vocabulary keys) on the student's mesh, batch and devices."""
  config = ml_collections.ConfigDict(student.to_dict())
  config.model = saved.model
  for key in _TEACHER_DATA_KEYS:
    config.data[key] = saved.data[key]
  config.objective = defaults.base_config().objective  # a teacher's own teacher is not needed
  return config


def _step(ckpt: Checkpointer, asked: int) -> int:
  steps = ckpt.all_steps()
  if asked == 0:
    return max(steps)
  if asked not in steps:
    raise ConfigError(f'config.objective.teacher_step={asked}: no checkpoint of that step in '
                      f'{ckpt.directory}; saved steps: {steps} (0: the newest)')
  return asked


def check_teacher_run(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError unless objective.teacher_run holds a checkpoint and a tokenizer
  (build_run asks before the student's data is written)."""
  run_dir = config.objective.teacher_run
  where = f'{_KEY}={run_dir!r}'
  if not os.path.isdir(run_dir):
    raise ConfigError(f'{where}: no such directory; give the run directory of a trained '
                      'lm_jax run (its logging.run_dir)')
  if not has_checkpoint(run_dir):
    raise ConfigError(f'{where} holds no checkpoint ({os.path.join(run_dir, "checkpoints")}'
                      '/<step>); train the teacher first')
  tokenizer_dir = os.path.join(run_dir, 'tokenizer')
  if not os.path.exists(os.path.join(tokenizer_dir, tokenizers.META_FILE)):
    raise ConfigError(f'{where} has no tokenizer ({tokenizer_dir}); the teacher\'s '
                      'vocabulary cannot be checked against the student\'s')


def build_teacher(config: ml_collections.ConfigDict, student_model_cfg, student_task,
                  mesh) -> Teacher:
  """The teacher of `config` on the student's `mesh` (build_mesh's triple), params abstract."""
  check_teacher_run(config)
  run_dir = config.objective.teacher_run
  where = f'{_KEY}={run_dir!r}'
  tokenizer_dir = os.path.join(run_dir, 'tokenizer')
  ckpt = Checkpointer(run_dir, config.checkpoint, read_only=True)
  try:
    step = _step(ckpt, config.objective.teacher_step)
    saved = saved_run_config(ckpt.saved_config(step), where)
  finally:
    ckpt.close()
  tokenizer = tokenizers.load_tokenizer(tokenizer_dir)
  roles = task_of(saved).special_tokens(saved.data)
  try:
    built = build(_teacher_config(config, saved),
                  special_tokens.model_vocab_size(tokenizer, roles), mesh=mesh)
  except ConfigError as e:
    raise ConfigError(f'the teacher ({where}, step {step}) cannot run on the student\'s '
                      f'mesh and batches: {e}') from e
  teacher_vocab, student_vocab = built.model_cfg.vocab_size, student_model_cfg.vocab_size
  if teacher_vocab != student_vocab:
    raise ConfigError(
        f'{where}: the teacher\'s vocabulary has {teacher_vocab} ids but the student\'s has '
        f'{student_vocab}; distillation compares the two distributions id by id, so the '
        'teacher must use the student\'s tokenizer (data.tokenizer, data.bpe_vocab_size, '
        'model.vocab_size)')
  if built.task.name != student_task.name:
    raise ConfigError(f'{where}: the teacher was trained on the {built.task.name!r} task, '
                      f'the student trains on {student_task.name!r}; distillation needs '
                      'both to predict the same targets')
  return Teacher(apply=built.fns.apply, param_shardings=built.state_shardings.params,
                 abstract_params=built.abstract_state().params, run_dir=run_dir, step=step,
                 tokenizer_identity=tokenizer.identity())


def restore_teacher(teacher: Teacher, student_tokenizer_identity: str,
                    config: ml_collections.ConfigDict):
  """The teacher's params of its step, sharded like the student's (read-only)."""
  if teacher.tokenizer_identity != student_tokenizer_identity:
    raise ConfigError(
        f'{_KEY}={teacher.run_dir!r}: the teacher\'s tokenizer ({teacher.tokenizer_identity}) '
        f'is not the student\'s ({student_tokenizer_identity}): the same ids would mean other '
        'text. Distil from a teacher trained with the same tokenizer')
  ckpt = Checkpointer(teacher.run_dir, config.checkpoint, read_only=True)
  try:
    return ckpt.restore_params(teacher.abstract_params, teacher.step)
  finally:
    ckpt.close()
