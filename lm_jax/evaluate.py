"""Held-out evaluation: loss, perplexity and bits per byte on the validation or test split."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.train.losses import cross_entropy_sums
from lm_jax.train.state import TrainState
from lm_jax.train.step import jit_eval_step

SPLITS = ('val', 'test')  # val drives decisions during training; test reports the result


def target_bytes(batches: list[dict[str, jax.Array]], lengths_V: np.ndarray,
                 out_sharding) -> int:
  """UTF-8 bytes of the targets that count (weight > 0) in global `batches`, all processes' rows."""
  lengths_V = jnp.asarray(lengths_V, jnp.int32)
  # One int32 sum per batch (rows * length * the longest token's bytes fits),
  # added up in Python; the result is replicated, so every process reads it.
  count = jax.jit(lambda t_BxL, w_BxL: jnp.sum(jnp.where(w_BxL > 0, lengths_V[t_BxL], 0)),
                  out_shardings=out_sharding)
  return sum(int(count(b['targets'], b['weights'])) for b in batches)


def make_evaluator(run, split: str = 'val'):
  """Returns evaluate(state) -> {'loss', 'perplexity', 'bits_per_byte'} on the
  first `train.eval_batches` batches of `split` (the same ones every time)."""
  eval_step = jit_eval_step(cross_entropy_sums, run.state_shardings,
                            run.batch_sharding, run.replicated)
  held_out = {'val': run.data.val_batches, 'test': run.data.test_batches}[split]
  batches = [run.global_batch(b) for b in held_out(run.config.train.eval_batches)]
  with jax.set_mesh(run.mesh):
    byte_sum = target_bytes(batches, run.data.tokenizer.token_byte_lengths(), run.replicated)

  def evaluate(state: TrainState) -> dict[str, float]:
    loss_sum = weight_sum = 0.0
    with jax.set_mesh(run.mesh), nn.logical_axis_rules(run.rules):
      for batch in batches:
        sums = eval_step(state, batch)
        loss_sum += sums['loss_sum']
        weight_sum += sums['weight_sum']
    return eval_metrics(float(loss_sum), float(weight_sum), byte_sum)

  return evaluate


def eval_metrics(loss_sum: float, weight_sum: float, byte_sum: int) -> dict[str, float]:
  """Mean loss (nats/token), perplexity, and bits per UTF-8 byte of the evaluated targets."""
  loss = loss_sum / max(weight_sum, 1.0)
  return {'loss': loss, 'perplexity': math.exp(min(loss, 700.0)),
          'bits_per_byte': loss_sum / math.log(2) / max(byte_sum, 1)}


def evaluate_checkpoint(config, step: int | str | None = None,
                        split: str = 'val') -> dict[str, float]:
  """Restores a run's checkpoint (the newest intact one, `step`, or 'best': the best
  evaluation the run recorded) and evaluates it on `split`."""
  from lm_jax.checkpoint import Checkpointer, check_data_resumable, check_resumable
  from lm_jax import checkpoint_recovery as recovery
  from lm_jax.config.loader import ConfigError
  from lm_jax.train.setup import build_run
  if split not in SPLITS:
    raise ConfigError(f'--split {split}: expected one of {", ".join(SPLITS)}')
  if config.data[f'{split}_fraction'] == 0:
    raise ConfigError(f'--split {split}: config.data.{split}_fraction=0, so the run has no '
                      f'{split} split; evaluate another split or set data.{split}_fraction')
  run = build_run(config)
  ckpt = Checkpointer(config.logging.run_dir, config.checkpoint)
  if not ckpt.all_steps():
    raise ConfigError(f'no checkpoint to evaluate in {ckpt.directory} '
                      f'(config.logging.run_dir={config.logging.run_dir!r})')

  def read(s):
    saved_config = ckpt.saved_config(s)
    check_resumable(saved_config, config)
    # Other data than the checkpoint's could put trained-on text in the held-out split.
    check_data_resumable(ckpt.saved_data_fingerprint(s), saved_config,
                         run.data.fingerprint, config)
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
