"""The objective of a run, by `config.objective.name`."""

from lm_jax.errors import ConfigError
from lm_jax.objectives.cross_entropy import CrossEntropy
from lm_jax.objectives.mlm import MaskedLM


def _cross_entropy(objective_cfg, model_cfg):
  return CrossEntropy(vocab_size=model_cfg.vocab_size,
                      label_smoothing=objective_cfg.label_smoothing,
                      z_loss=objective_cfg.z_loss)


def _mlm(objective_cfg, model_cfg):
  return MaskedLM(vocab_size=model_cfg.vocab_size,
                  label_smoothing=objective_cfg.label_smoothing, z_loss=objective_cfg.z_loss)


# name -> builder(config.objective, resolved model config)
_BUILDERS = {'cross_entropy': _cross_entropy, 'mlm': _mlm}
OBJECTIVE_NAMES = tuple(_BUILDERS)


def make_objective(config, model_cfg):
  """The objective for `config.objective` and the resolved model (its real vocabulary)."""
  name = config.objective.name
  if name not in _BUILDERS:
    raise ConfigError(f'config.objective.name={name!r} is not an objective; choose one '
                      f'of {", ".join(map(repr, OBJECTIVE_NAMES))}')
  return _BUILDERS[name](config.objective, model_cfg)
