"""A frozen teacher whose logits become soft targets inside the jitted steps.

The seam: a run with a teacher gives the train and eval steps this object and
the teacher's params as one more jit argument (sharded like the student's, on
the same mesh and rules). Inside the step, `add_soft_targets` puts the
teacher's logits into the batch under TEACHER_LOGITS, per microbatch and under
stop_gradient, and the objective reads them from there as it reads
`targets`. The step never knows what the teacher is; the teacher's params are
no part of the train state, so the optimizer never sees them.
"""

import dataclasses
from typing import Any, Callable

import jax

TEACHER_LOGITS = 'teacher_logits'  # batch key of the teacher's logits [B, L, V_teacher]


@dataclasses.dataclass(frozen=True)
class Teacher:
  """A frozen model: its apply, its params' shardings, and where it was restored from."""
  apply: Callable           # (variables, batch, deterministic=True) -> {'logits': ...}
  param_shardings: Any      # NamedShardings of its params on the student's mesh
  abstract_params: Any      # ShapeDtypeStructs with those shardings (restore, lowering)
  run_dir: str
  step: int
  tokenizer_identity: str   # the teacher's tokenizer (its ids must mean the student's)

  def add_soft_targets(self, params, batch: dict) -> dict:
    """`batch` plus the teacher's logits (deterministic, no gradient) under TEACHER_LOGITS."""
    outputs = self.apply({'params': jax.lax.stop_gradient(params)}, batch, deterministic=True)
    return {**batch, TEACHER_LOGITS: jax.lax.stop_gradient(outputs['logits'])}
