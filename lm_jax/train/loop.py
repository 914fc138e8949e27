"""The training loop: resume, step, log, evaluate, checkpoint, stop cleanly.

It pulls batches from an iterator whose position it checkpoints, and calls a
jitted step it got from step.py; it knows neither the model family nor how
batches are made. Evaluation is a callback it is given (lm_jax/cli.py makes
it from lm_jax/evaluate.py).
"""

import contextlib
import logging
import math
import os
import signal
import time

from typing import Callable

import flax.linen as nn
import jax

from lm_jax.checkpoint import Checkpointer, check_data_resumable, check_resumable
from lm_jax.checkpoint_recovery import newest_readable
from lm_jax.metrics.flops import mfu
from lm_jax.metrics.hardware import peak_flops_per_device
from lm_jax.metrics.profiler import StepProfiler
from lm_jax.metrics.progress import ProgressBar
from lm_jax.metrics.writers import MetricsWriter
from lm_jax.models.pipeline import bubble_fraction
from lm_jax.run import Run
from lm_jax.train.early_stopping import MetricWatch
from lm_jax.train.optimizer import weight_penalty
from lm_jax.train.step import jit_train_step


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


class _StopRequest:
  """Turns SIGTERM / SIGINT into a flag the loop checks between steps."""

  def __init__(self):
    self.signal_name = None

  @contextlib.contextmanager
  def installed(self):
    def handler(signum, _):
      self.signal_name = signal.Signals(signum).name
      logging.warning('%s received: saving a checkpoint and stopping',
                      self.signal_name)
    previous = {s: signal.signal(s, handler)
                for s in (signal.SIGTERM, signal.SIGINT)}
    try:
      yield self
    finally:
      for s, h in previous.items():
        signal.signal(s, h)


def _peak_flops_total(config, device) -> float | None:
  """Peak FLOP/s of all devices, for MFU; None, with one warning, when the
  peak of `device` (the kind every device is) is not known."""
  per_device = peak_flops_per_device(device, config.model.dtype,
                                     config.logging.peak_flops_per_device)
  if per_device is None:
    logging.warning(
        'no peak FLOP/s known for device_kind %r: MFU is not logged. Set '
        '--config.logging.peak_flops_per_device (FLOP/s) or add the device to '
        'lm_jax/metrics/hardware.py PEAK_FLOPS', device.device_kind)
    return None
  return per_device * jax.device_count()


def _initial_state(run: Run, ckpt: Checkpointer, watch: MetricWatch):
  """Restores the newest intact checkpoint (data position, loop state) or
  creates a new state; damaged newer checkpoints are set aside."""
  def read(step):
    saved_config = ckpt.saved_config(step)
    check_resumable(saved_config, run.config)
    same_data = check_data_resumable(ckpt.saved_data_fingerprint(step), saved_config,
                                     run.data.fingerprint, run.config)
    loop_state = ckpt.saved_loop_state(step)
    # New data (checkpoint.allow_new_data): the iterator stays at batch 0.
    train_iter = run.data.train_iter if same_data else None
    return ckpt.restore(run.built.abstract_state(), train_iter, step), loop_state

  found = newest_readable(ckpt, read, move=True)
  if found is not None:
    step, (state, loop_state) = found
    watch.load(loop_state)
    if run.config.checkpoint.keep_best:
      ckpt.set_best_step(watch.best_step)
    logging.info('resumed from step %d in %s', step, ckpt.directory)
    return state
  return run.built.init_state()


def train(run: Run, evaluate: Callable | None = None) -> dict[str, float]:
  """Trains to config.train.steps (resuming if the run dir has checkpoints),
  calling evaluate(state) -> metrics every train.eval_every steps; returns the
  last logged train metrics and the final eval metrics."""
  cfg, built = run.config, run.built
  is_primary = jax.process_index() == 0
  os.makedirs(cfg.logging.run_dir, exist_ok=True)
  ckpt = Checkpointer(cfg.logging.run_dir, cfg.checkpoint, run.data.fingerprint)
  watch = MetricWatch.from_config(cfg.train)
  state = _initial_state(run, ckpt, watch)
  start_step = int(jax.device_get(state.step))

  step_fn = jit_train_step(built.objective, cfg.train.microbatches, built.schedule,
                           built.state_shardings, built.batch_sharding, built.replicated,
                           penalty_fn=weight_penalty(cfg.optimizer), teacher=built.teacher)
  if not cfg.train.eval_every:
    evaluate = None
  # A resumed run drops what a crashed run logged after its checkpoint.
  writer = MetricsWriter(cfg.logging.run_dir, is_primary=is_primary,
                         tensorboard=cfg.logging.tensorboard,
                         purge_step=start_step + 1 if start_step else None,
                         wandb_project=cfg.logging.wandb_project,
                         wandb_mode=cfg.logging.wandb_mode, wandb_config=cfg.to_dict())
  profiler = StepProfiler(cfg.logging.profile_steps, writer.tensorboard_dir, is_primary)
  if start_step == 0:
    writer.write_text('config', cfg.to_json_best_effort(indent=2))
  progress = ProgressBar(cfg.train.steps, initial_step=start_step,
                         enabled=cfg.logging.progress and is_primary)
  tokens_per_step = cfg.train.global_batch_size * cfg.data.seq_len
  # Model FLOPs (MFU), not hardware FLOPs: remat recompute is not counted.
  train_flops = built.family.flops_per_token(built.model_cfg, cfg.data.seq_len)['train']
  peak = _peak_flops_total(cfg, jax.devices()[0])
  last_train, last_eval, last_saved = {}, {}, None

  def save(state, force=False):
    nonlocal last_saved
    if ckpt.save(state, run.data.train_iter, cfg, force=force,
                 loop_state=watch.state()):
      last_saved = int(jax.device_get(state.step))

  def check_finite(metrics, step):
    if not all(math.isfinite(v) for v in metrics.values()):
      ckpt.wait()
      good = ckpt.latest_step()
      raise TrainingDiverged(
          f'non-finite training metrics at step {step}: '
          f'{ {k: v for k, v in metrics.items() if not math.isfinite(v)} }. '
          f'Stopped; the last good checkpoint is step {good} in {ckpt.directory}. '
          'Lower optimizer.lr, raise warmup_steps or set optimizer.grad_clip.')

  stop = _StopRequest()
  window_start, window_steps = time.perf_counter(), 0
  if watch.should_stop:
    logging.warning('the run had stopped at step %d (%s); raise '
                    'train.early_stop_patience to train on', start_step, watch.reason())
  end_step = start_step if watch.should_stop else cfg.train.steps
  with stop.installed(), jax.set_mesh(built.mesh), nn.logical_axis_rules(built.rules):
    for step in range(start_step, end_step):
      profiler.before_step(step + 1)
      batch = run.global_batch(next(run.data.train_iter))
      if step == start_step:
        compile_start = time.perf_counter()
        state, metrics = step_fn(state, batch, *run.teacher_args)
        jax.block_until_ready(metrics)
        writer.write(step + 1, {'compile_s': time.perf_counter() - compile_start},
                     prefix='perf')
        window_start, window_steps = time.perf_counter(), 0
      else:
        state, metrics = step_fn(state, batch, *run.teacher_args)
        window_steps += 1
      profiler.after_step(step + 1, metrics)
      done = step + 1
      is_last = done == cfg.train.steps
      should_save = (cfg.checkpoint.every and done % cfg.checkpoint.every == 0)
      if done % cfg.train.log_every == 0 or is_last or should_save or stop.signal_name:
        last_train = {k: float(v) for k, v in jax.device_get(metrics).items()}
        elapsed = time.perf_counter() - window_start
        if window_steps:
          tokens_per_s = window_steps * tokens_per_step / elapsed
          last_train['tokens_per_s'] = tokens_per_s
          last_train['step_s'] = elapsed / window_steps
          if peak:  # unknown accelerator: no MFU (a NaN would stop the run)
            last_train['mfu'] = mfu(tokens_per_s, train_flops, peak)
        last_train['perplexity'] = math.exp(min(last_train['loss'], 700.0))
        if cfg.mesh.stage > 1:  # idle share of the pipeline's stage-iterations
          last_train['pipeline_bubble'] = bubble_fraction(
              cfg.mesh.stage, cfg.mesh.pipeline_microbatches)
        writer.write(done, last_train, prefix='train')  # NaNs too: they show where
        check_finite(last_train, done)
        progress.update(done, last_train['loss'], last_train.get('tokens_per_s'))
        window_start, window_steps = time.perf_counter(), 0
      if evaluate and (done % cfg.train.eval_every == 0 or is_last):
        last_eval = evaluate(state)
        writer.write(done, last_eval, prefix='eval')
        window_start, window_steps = time.perf_counter(), 0
        # A new best is saved now, whatever checkpoint.every says, so it is on
        # disk; the wait first lets no pending save's cleanup see it unsaved.
        if watch.observe(done, last_eval) and cfg.checkpoint.keep_best:
          ckpt.wait()
          ckpt.set_best_step(done)
          should_save = True
      if should_save or is_last or stop.signal_name or watch.should_stop:
        save(state, force=True)
      if stop.signal_name:
        logging.warning('stopped by %s at step %d', stop.signal_name, done)
        break
      if watch.should_stop:
        logging.warning('stopped early at step %d: %s', done, watch.reason())
        break
    profiler.close()
    ckpt.close()  # still under the handler: a signal now cannot cut the last save
  progress.close()
  writer.close()
  return {**{f'train/{k}': v for k, v in last_train.items()},
          **{f'eval/{k}': v for k, v in last_eval.items()},
          'step': int(jax.device_get(state.step)), 'last_saved_step': last_saved,
          'best_step': watch.best_step, 'early_stopped': watch.should_stop}
