"""Held-out evaluation on the validation or test split: the objective's metrics,
perplexity and bits per byte.

Evaluation is a callback the training loop is given (lm_jax/cli.py wires
them); this module does not import lm_jax.train, nor the reverse.
"""

import functools
import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.objectives import Objective, mean_metrics
from lm_jax.objectives.teacher import Teacher

SPLITS = ('val', 'test')  # val drives decisions during training; test reports the result


def eval_step(params, batch, teacher_params=None, *, apply_fn, objective: Objective,
              teacher: Teacher | None = None):
  """The objective's evaluation sums on one batch (deterministic)."""
  if teacher is not None:
    batch = teacher.add_soft_targets(teacher_params, batch)
  outputs = apply_fn({'params': params}, batch, deterministic=True)
  _, metric_sums, weight_sum = objective.evaluate(outputs, batch)
  return metric_sums, weight_sum


def jit_eval_step(built):
  """eval_step under jax.jit with the params' and the batch's shardings; with a
  teacher, it takes (params, batch, teacher params)."""
  step = functools.partial(eval_step, apply_fn=built.fns.apply, objective=built.objective,
                           teacher=built.teacher)
  teacher_shardings = () if built.teacher is None else (built.teacher.param_shardings,)
  return jax.jit(step, in_shardings=(built.state_shardings.params, built.batch_sharding)
                 + teacher_shardings,
                 out_shardings=built.replicated)


def target_bytes(batches: list[dict[str, jax.Array]], lengths_V: np.ndarray,
                 out_sharding) -> int:
  """UTF-8 bytes of the targets that count (weight > 0) in global `batches`, all processes' rows."""
  lengths_V = jnp.asarray(lengths_V, jnp.int32)
  # Special tokens (ids past the text vocabulary) have no bytes.
  count = jax.jit(lambda t_BxL, w_BxL: jnp.sum(jnp.where(
      (w_BxL > 0) & (t_BxL < lengths_V.shape[0]),
      lengths_V[jnp.minimum(t_BxL, lengths_V.shape[0] - 1)], 0)), out_shardings=out_sharding)
  # One int32 sum per batch (rows * length * the longest token's bytes fits),
  # added up in Python; the result is replicated, so every process reads it.
  return sum(int(count(b['targets'], b['weights'])) for b in batches)


def make_evaluator(run, split: str = 'val'):
  """Returns evaluate(state) -> {'loss', 'perplexity', 'bits_per_byte', ...} on the
  first `train.eval_batches` batches of `split` (the same ones every time)."""
  built = run.built
  step = jit_eval_step(built)
  held_out = {'val': run.data.val_batches, 'test': run.data.test_batches}[split]
  batches = [run.global_batch(b) for b in held_out(run.config.train.eval_batches)]
  with jax.set_mesh(built.mesh):
    byte_sum = target_bytes(batches, run.data.tokenizer.token_byte_lengths(), built.replicated)

  def evaluate(state) -> dict[str, float]:
    totals, weight = None, 0.0
    with jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
      for batch in batches:
        sums, w = jax.device_get(step(state.params, batch, *run.teacher_args))
        totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
        weight += float(w)
    return eval_metrics(jax.tree.map(float, totals), weight, byte_sum)

  return evaluate


def eval_metrics(metric_sums: dict, weight_sum: float, byte_sum: int) -> dict[str, float]:
  """Means of the objective's sums, perplexity, and bits per UTF-8 byte of the evaluated targets."""
  metrics = {k: float(v) for k, v in mean_metrics(metric_sums, weight_sum, max).items()}
  loss = metrics['loss']
  metrics['perplexity'] = math.exp(min(loss, 700.0))
  metrics['bits_per_byte'] = loss * max(weight_sum, 1.0) / math.log(2) / max(byte_sum, 1)
  return metrics


def evaluate_checkpoint(config, step: int | str | None = None,
                        split: str = 'val') -> dict[str, float]:
  """Restores a run's checkpoint (the newest intact one, `step`, or 'best': the best
  evaluation the run recorded) and evaluates it on `split`."""
  # pylint: disable=g-import-not-at-top
  from lm_jax.checkpoint import (Checkpointer, check_data_resumable, check_resumable,
                                 has_checkpoint)
  from lm_jax import checkpoint_recovery as recovery
  from lm_jax.config.loader import ConfigError
  from lm_jax.run import build_run
  if split not in SPLITS:
    raise ConfigError(f'--split {split}: expected one of {", ".join(SPLITS)}')
  if config.data[f'{split}_fraction'] == 0:
    raise ConfigError(f'--split {split}: config.data.{split}_fraction=0, so the run has no '
                      f'{split} split; evaluate another split or set data.{split}_fraction')
  # Before build_run, which would write a tokenizer into the run directory.
  if not has_checkpoint(config.logging.run_dir):
    raise ConfigError(
        f'no checkpoint to evaluate in {os.path.join(config.logging.run_dir, "checkpoints")} '
        f'(config.logging.run_dir={config.logging.run_dir!r})')
  run = build_run(config)
  ckpt = Checkpointer(config.logging.run_dir, config.checkpoint)

  def read(s):
    saved_config = ckpt.saved_config(s)
    check_resumable(saved_config, config)
    # Other data than the checkpoint's could put trained-on text in the held-out split.
    check_data_resumable(ckpt.saved_data_fingerprint(s), saved_config,
                         run.data.fingerprint, config)
    return ckpt.restore(run.built.abstract_state(), None, step=s)

  asked = step
  if step == 'best':
    step = _best_step(ckpt)
  if step is None:
    step, state = recovery.newest_readable(ckpt, read, move=False)
  else:
    if step not in ckpt.all_steps():
      raise ConfigError(f'--step {asked}: no checkpoint of step {step} in '
                        f'{ckpt.directory}; saved steps: {ckpt.all_steps()}')
    try:
      state = recovery.read_step(ckpt, step, read)
    except recovery.DamagedCheckpoint as e:
      raise ConfigError(f'--step {asked}: {e}. Give another --step (saved: '
                        f'{ckpt.all_steps()}) or none for the newest intact '
                        'checkpoint') from e
  metrics = make_evaluator(run, split)(state)
  ckpt.close()
  return {'step': step, 'split': split, **metrics}


def _best_step(ckpt) -> int:
  """The best evaluation's step, as recorded in the newest readable checkpoint."""
  from lm_jax import checkpoint_recovery as recovery
  from lm_jax.config.loader import ConfigError
  step, loop_state = recovery.newest_readable(ckpt, ckpt.saved_loop_state,
                                              move=False)
  if not loop_state or loop_state.get('best_step') is None:
    raise ConfigError(
        f'--step best: checkpoint {step} in {ckpt.directory} records no best '
        'evaluation (the run evaluated nothing, train.eval_every=0, or an older '
        'lm_jax saved it); give --step N')
  return loop_state['best_step']
