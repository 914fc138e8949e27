"""Held-out evaluation: loss, perplexity and bits per byte."""

import math

import flax.linen as nn
import jax

from lm_jax.train.losses import cross_entropy_sums
from lm_jax.train.state import TrainState
from lm_jax.train.step import jit_eval_step


def make_evaluator(run):
  """Returns evaluate(state) -> {'loss', 'perplexity', 'bits_per_byte'} on the
  first `train.eval_batches` validation batches (the same ones every time)."""
  eval_step = jit_eval_step(cross_entropy_sums, run.state_shardings,
                            run.batch_sharding, run.replicated)
  batches = [run.global_batch(b)
             for b in run.data.val_batches(run.config.train.eval_batches)]

  def evaluate(state: TrainState) -> dict[str, float]:
    loss_sum = weight_sum = 0.0
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(run.rules):
      for batch in batches:
        sums = eval_step(state, batch)
        loss_sum += sums['loss_sum']
        weight_sum += sums['weight_sum']
    return eval_metrics(float(loss_sum), float(weight_sum),
                        run.data.bytes_per_token)

  return evaluate


def eval_metrics(loss_sum: float, weight_sum: float,
                 bytes_per_token: float) -> dict[str, float]:
  """Mean loss (nats/token), perplexity, and bits per UTF-8 byte of text."""
  loss = loss_sum / max(weight_sum, 1.0)
  return {'loss': loss, 'perplexity': math.exp(min(loss, 700.0)),
          'bits_per_byte': loss / math.log(2) / bytes_per_token}


def evaluate_checkpoint(config, step: int | str | None = None) -> dict[str, float]:
  """Restores a run's checkpoint (the newest intact one, `step`, or 'best':
  the best evaluation the run recorded) and evaluates it."""
  from lm_jax.checkpoint import Checkpointer, check_resumable
  from lm_jax import checkpoint_recovery as recovery
  from lm_jax.config.loader import ConfigError
  from lm_jax.train.setup import build_run
  run = build_run(config)
  ckpt = Checkpointer(config.logging.run_dir, config.checkpoint)
  if not ckpt.all_steps():
    raise ConfigError(f'no checkpoint to evaluate in {ckpt.directory} '
                      f'(config.logging.run_dir={config.logging.run_dir!r})')

  def read(s):
    check_resumable(ckpt.saved_config(s), config)
    return ckpt.restore(run.abstract_state(), None, step=s)

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
  metrics = make_evaluator(run)(state)
  ckpt.close()
  return {'step': step, **metrics}


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
