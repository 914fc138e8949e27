"""The jitted train step. It knows `apply_fn` and an objective, not the model or the loss."""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from lm_jax.objectives import Objective, mean_metrics
from lm_jax.objectives.teacher import Teacher
from lm_jax.train.state import TrainState

# penalty_fn(params) -> (penalty, its gradient): a term of the objective that
# depends on the params only (optimizer.l1 / l2), added to the *mean* loss.
PenaltyFn = Callable

def split_microbatches(batch, num_micro: int):
  """[B, ...] -> [M, B/M, ...], microbatch m = rows m, m+M, ... so each one
  stays spread over every batch shard (no resharding)."""
  def split(x):
    x = x.reshape((x.shape[0] // num_micro, num_micro) + x.shape[1:])
    x = jnp.swapaxes(x, 0, 1)
    return nn.with_logical_constraint(x, (None, 'batch') + (None,) * (x.ndim - 2))
  return jax.tree.map(split, batch)


def _grads_and_sums(state: TrainState, params, batch, rng, objective: Objective,
                    num_micro: int, teacher: Teacher | None = None, teacher_params=None):
  """Sum of gradients and of the objective's sums over microbatches (scan, fp32)."""

  def objective_sum(p, micro, micro_rng):
    if teacher is not None:  # per microbatch: the teacher's logits are never held whole
      micro = teacher.add_soft_targets(teacher_params, micro)
    outputs = state.apply_fn({'params': p}, micro, deterministic=False,
                             rngs={'dropout': micro_rng})
    total, metric_sums, weight_sum = objective(outputs, micro)
    return total, (metric_sums, weight_sum)

  grad_fn = jax.grad(objective_sum, has_aux=True)
  if num_micro == 1:
    return grad_fn(params, batch, rng)

  def body(carry, xs):
    grads_acc, aux_acc = carry
    micro, i = xs
    grads, aux = grad_fn(params, micro, jax.random.fold_in(rng, i))
    return (jax.tree.map(jnp.add, grads_acc, grads),
            jax.tree.map(jnp.add, aux_acc, aux)), None

  zeros_grads = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
  micro_batches = split_microbatches(batch, num_micro)
  first_aux = jax.eval_shape(grad_fn, params,
                             jax.tree.map(lambda x: x[0], micro_batches), rng)[1]
  zeros_aux = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), first_aux)
  (grads, aux), _ = jax.lax.scan(
      body, (zeros_grads, zeros_aux), (micro_batches, jnp.arange(num_micro)))
  return grads, aux


def mean_grads(state: TrainState, batch, *, objective: Objective, num_micro: int,
               teacher: Teacher | None = None, teacher_params=None):
  """Gradient of the objective's mean over the global batch, and the metric means."""
  step_rng = jax.random.fold_in(state.rng, state.step)
  grads, (metric_sums, weight_sum) = _grads_and_sums(state, state.params, batch, step_rng,
                                                     objective, num_micro, teacher,
                                                     teacher_params)
  # Divide once by the global weight: accumulation == the big batch.
  grads = jax.tree.map(lambda g, p: (g / jnp.maximum(weight_sum, 1.0)).astype(p.dtype),
                       grads, state.params)
  return grads, mean_metrics(metric_sums, weight_sum), weight_sum


def train_step(state: TrainState, batch, teacher_params=None, *, objective: Objective,
               num_micro: int, schedule: optax.Schedule, penalty_fn: PenaltyFn | None = None,
               teacher: Teacher | None = None):
  """One optimizer update on the global batch (`teacher_params`: with a `teacher` only)."""
  grads, metrics, weight_sum = mean_grads(state, batch, objective=objective,
                                          num_micro=num_micro, teacher=teacher,
                                          teacher_params=teacher_params)
  extra = {}
  if penalty_fn is not None:
    # Once per step, outside the microbatch sums, so never divided by tokens.
    penalty, penalty_grads = penalty_fn(state.params)
    grads = jax.tree.map(jnp.add, grads, penalty_grads)
    extra['penalty'] = penalty
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {
      **metrics,
      'grad_norm': optax.tree.norm(grads),
      # Of the *updated* params: a finite value means the state is safe to save.
      'param_norm': optax.tree.norm(params),
      'lr': schedule(state.step),
      'tokens': weight_sum,
      **extra,
  }
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  return new_state, metrics


def jit_train_step(objective: Objective, num_micro: int, schedule, state_shardings,
                   batch_sharding, metrics_sharding, penalty_fn: PenaltyFn | None = None,
                   teacher: Teacher | None = None):
  """train_step under jax.jit with in/out shardings and the state donated; with a
  `teacher`, it takes (state, batch, teacher params), else (state, batch)."""
  step = functools.partial(train_step, objective=objective, num_micro=num_micro,
                           schedule=schedule, penalty_fn=penalty_fn, teacher=teacher)
  teacher_shardings = () if teacher is None else (teacher.param_shardings,)
  return jax.jit(step, in_shardings=(state_shardings, batch_sharding) + teacher_shardings,
                 out_shardings=(state_shardings, metrics_sharding), donate_argnums=0)
