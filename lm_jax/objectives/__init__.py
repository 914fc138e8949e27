"""Objectives: outputs + batch -> (objective sum, {metric: sum}, weight sum).

Every objective returns *sums* over the batch and the weight they are sums
over; the train and eval steps divide each metric by the global weight sum
once (lm_jax/objectives/base.py `mean_metrics`), which is what makes gradient
accumulation equal the big batch. `make_objective(config, model_cfg)` picks
one by `config.objective.name`; train, eval, the planner's XLA check and the
benchmark all get theirs from it.
"""

from lm_jax.objectives.base import Objective, mean_metrics
from lm_jax.objectives.registry import OBJECTIVE_NAMES, make_objective

__all__ = ['OBJECTIVE_NAMES', 'Objective', 'make_objective', 'mean_metrics']
