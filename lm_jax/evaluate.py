"""Held-out evaluation: the objective's metrics, perplexity and bits per byte.

Evaluation is a callback the training loop is given (lm_jax/cli.py wires
them); this module does not import lm_jax.train, nor the reverse.
"""

import functools
import math

import flax.linen as nn
import jax

from lm_jax.objectives import Objective, mean_metrics


def eval_step(params, batch, *, apply_fn, objective: Objective):
  """The objective's evaluation sums on one batch (deterministic)."""
  outputs = apply_fn({'params': params}, batch, deterministic=True)
  _, metric_sums, weight_sum = objective.evaluate(outputs, batch)
  return metric_sums, weight_sum


def jit_eval_step(built):
  """eval_step under jax.jit with the params' and the batch's shardings."""
  step = functools.partial(eval_step, apply_fn=built.fns.apply, objective=built.objective)
  return jax.jit(step, in_shardings=(built.state_shardings.params, built.batch_sharding),
                 out_shardings=built.replicated)


def make_evaluator(run):
  """Returns evaluate(state) -> {'loss', 'perplexity', 'bits_per_byte', ...} on the
  first `train.eval_batches` validation batches (the same ones every time)."""
  built = run.built
  step = jit_eval_step(built)
  batches = [run.global_batch(b) for b in run.data.val_batches(run.config.train.eval_batches)]

  def evaluate(state) -> dict[str, float]:
    totals, weight = None, 0.0
    with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
      for batch in batches:
        sums, w = jax.device_get(step(state.params, batch))
        totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
        weight += float(w)
    return eval_metrics(jax.tree.map(float, totals), weight, run.data.bytes_per_token)

  return evaluate


def eval_metrics(metric_sums: dict, weight_sum: float, bytes_per_token: float) -> dict:
  """Means of the objective's sums, plus perplexity and bits per UTF-8 byte of the loss."""
  metrics = {k: float(v) for k, v in mean_metrics(metric_sums, weight_sum).items()}
  loss = metrics['loss']
  metrics['perplexity'] = math.exp(min(loss, 700.0))
  metrics['bits_per_byte'] = loss / math.log(2) / bytes_per_token
  return metrics


def evaluate_checkpoint(config, step: int | None = None) -> dict[str, float]:
  """Restores a run's checkpoint (latest, or `step`) and evaluates it."""
  from lm_jax.checkpoint import Checkpointer, check_resumable  # pylint: disable=g-import-not-at-top
  from lm_jax.config.loader import ConfigError  # pylint: disable=g-import-not-at-top
  from lm_jax.run import build_run  # pylint: disable=g-import-not-at-top
  run = build_run(config)
  ckpt = Checkpointer(config.logging.run_dir, config.checkpoint)
  if ckpt.latest_step() is None:
    raise ConfigError(f'no checkpoint to evaluate in {ckpt.directory} '
                      f'(config.logging.run_dir={config.logging.run_dir!r})')
  step = ckpt.latest_step() if step is None else step
  if step not in ckpt.all_steps():
    raise ConfigError(f'--step {step}: no such checkpoint in {ckpt.directory}; '
                      f'saved steps: {ckpt.all_steps()}')
  check_resumable(ckpt.saved_config(step), config)
  state = ckpt.restore(run.built.abstract_state(), None, step=step)
  metrics = make_evaluator(run)(state)
  ckpt.close()
  return {'step': step, **metrics}
