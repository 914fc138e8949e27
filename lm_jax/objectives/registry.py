"""The objective of a run, by `config.objective.name`."""

from lm_jax.errors import ConfigError
from lm_jax.objectives.cross_entropy import CrossEntropy
from lm_jax.objectives.mlm import MaskedLM
from lm_jax.objectives.distill import Distillation


def _cross_entropy(objective_cfg, model_cfg):
  return CrossEntropy(vocab_size=model_cfg.vocab_size,
                      label_smoothing=objective_cfg.label_smoothing,
                      z_loss=objective_cfg.z_loss)


def _mlm(objective_cfg, model_cfg):
  return MaskedLM(vocab_size=model_cfg.vocab_size,
                  label_smoothing=objective_cfg.label_smoothing, z_loss=objective_cfg.z_loss)


def _distill(objective_cfg, model_cfg):
  return Distillation(vocab_size=model_cfg.vocab_size,
                      temperature=objective_cfg.temperature,
                      kl_weight=objective_cfg.kl_weight,
                      label_smoothing=objective_cfg.label_smoothing,
                      z_loss=objective_cfg.z_loss)


# name -> builder(config.objective, resolved model config)
_BUILDERS = {'cross_entropy': _cross_entropy, 'mlm': _mlm, 'distill': _distill}
OBJECTIVE_NAMES = tuple(_BUILDERS)
# The config.objective keys each objective reads (besides name); the others
# must stay at their defaults.
_READS = {'cross_entropy': ('label_smoothing', 'z_loss'),
          'mlm': ('label_smoothing', 'z_loss'),
          'distill': ('label_smoothing', 'z_loss', 'temperature', 'kl_weight',
                      'teacher_run', 'teacher_step')}


def validate_objective(objective_cfg, defaults) -> None:
  """Raises ConfigError for an unknown objective, or a changed key it does not read,
  or distill without objective.teacher_run."""
  name = objective_cfg.name
  if name not in _BUILDERS:
    raise ConfigError(f'config.objective.name={name!r} is not an objective; choose one '
                      f'of {", ".join(map(repr, OBJECTIVE_NAMES))}')
  for key in defaults.keys():
    if key != 'name' and key not in _READS[name] and objective_cfg[key] != defaults[key]:
      raise ConfigError(
          f'config.objective.{key}={objective_cfg[key]!r}: config.objective.name={name!r} '
          f'does not use it; leave it at its default {defaults[key]!r}'
          + (" or set config.objective.name='distill'" if key in _READS['distill'] else ''))
  if name == 'distill' and not objective_cfg.teacher_run:
    raise ConfigError("config.objective.teacher_run='': config.objective.name='distill' "
                      'needs a teacher: the run directory of an lm_jax run with the '
                      "student's vocabulary (e.g. --config.objective.teacher_run=runs/teacher)")


def make_objective(config, model_cfg):
  """The objective for `config.objective` and the resolved model (its real vocabulary)."""
  name = config.objective.name
  if name not in _BUILDERS:
    raise ConfigError(f'config.objective.name={name!r} is not an objective; choose one '
                      f'of {", ".join(map(repr, OBJECTIVE_NAMES))}')
  return _BUILDERS[name](config.objective, model_cfg)
