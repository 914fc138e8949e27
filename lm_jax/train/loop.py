"""The training loop: resume, step, log, evaluate, checkpoint, stop cleanly.

It pulls batches from an iterator whose position it checkpoints, and calls a
jitted step it got from step.py; it knows neither the model family nor how
batches are made.
"""

import contextlib
import logging
import math
import os
import signal
import time

import flax.linen as nn
import jax
import ml_collections

from lm_jax.checkpoint import Checkpointer, check_resumable
from lm_jax.evaluate import make_evaluator
from lm_jax.metrics.flops import flops_per_token, mfu
from lm_jax.metrics.hardware import peak_flops_per_device
from lm_jax.metrics.profiler import StepProfiler
from lm_jax.metrics.progress import ProgressBar
from lm_jax.metrics.writers import MetricsWriter
from lm_jax.models.pipeline import bubble_fraction
from lm_jax.train.losses import cross_entropy_sums
from lm_jax.train.setup import Run, build_run
from lm_jax.train.state import create_train_state
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


def _loss_fn(config):
  z_loss = config.train.z_loss
  return lambda logits, batch: cross_entropy_sums(logits, batch, z_loss)


def _initial_state(run: Run, ckpt: Checkpointer):
  """Restores the latest checkpoint (and data position) or creates a new state."""
  if ckpt.latest_step() is not None:
    check_resumable(ckpt.saved_config(), run.config)
    state = ckpt.restore(run.abstract_state(), run.data.train_iter)
    logging.info('resumed from step %d in %s', int(state.step), ckpt.directory)
    return state
  state, _ = create_train_state(
      run.model, run.tx, jax.random.PRNGKey(run.config.train.seed),
      run.example_inputs_BxL, run.mesh, run.rules)
  return state


def train(config: ml_collections.ConfigDict) -> dict[str, float]:
  """Trains to config.train.steps (resuming if the run dir has checkpoints);
  returns the last logged train metrics and the final eval metrics."""
  run = build_run(config)
  cfg = run.config
  is_primary = jax.process_index() == 0
  os.makedirs(cfg.logging.run_dir, exist_ok=True)
  ckpt = Checkpointer(cfg.logging.run_dir, cfg.checkpoint)
  state = _initial_state(run, ckpt)
  start_step = int(jax.device_get(state.step))

  step_fn = jit_train_step(_loss_fn(cfg), cfg.train.microbatches, run.schedule,
                           run.state_shardings, run.batch_sharding, run.replicated)
  evaluate = make_evaluator(run) if cfg.train.eval_every else None
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
  train_flops = flops_per_token(run.model_cfg, cfg.data.seq_len)['train']
  peak = peak_flops_per_device(jax.devices()[0], cfg.model.dtype,
                               cfg.logging.peak_flops_per_device) * jax.device_count()
  last_train, last_eval, last_saved = {}, {}, None

  def save(state, force=False):
    nonlocal last_saved
    if ckpt.save(state, run.data.train_iter, cfg, force=force):
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
  with stop.installed(), jax.set_mesh(run.mesh), nn.logical_axis_rules(run.rules):
    for step in range(start_step, cfg.train.steps):
      profiler.before_step(step + 1)
      batch = run.global_batch(next(run.data.train_iter))
      if step == start_step:
        compile_start = time.perf_counter()
        state, metrics = step_fn(state, batch)
        jax.block_until_ready(metrics)
        writer.write(step + 1, {'compile_s': time.perf_counter() - compile_start},
                     prefix='perf')
        window_start, window_steps = time.perf_counter(), 0
      else:
        state, metrics = step_fn(state, batch)
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
          last_train['mfu'] = mfu(tokens_per_s, train_flops, peak)
        last_train['perplexity'] = math.exp(min(last_train['loss'], 700.0))
        if cfg.mesh.stage > 1:  # idle share of the pipeline's stage-iterations
          last_train['pipeline_bubble'] = bubble_fraction(
              cfg.mesh.stage, cfg.mesh.pipeline_microbatches)
        writer.write(done, last_train, prefix='train')  # NaNs too: they show where
        check_finite(last_train, done)
        progress.update(done, last_train['loss'], last_train.get('tokens_per_s'))
        window_start, window_steps = time.perf_counter(), 0
      if cfg.train.eval_every and (done % cfg.train.eval_every == 0 or is_last):
        last_eval = evaluate(state)
        writer.write(done, last_eval, prefix='eval')
        window_start, window_steps = time.perf_counter(), 0
      if should_save or is_last or stop.signal_name:
        save(state, force=True)
      if stop.signal_name:
        logging.warning('stopped by %s at step %d', stop.signal_name, done)
        break
  profiler.close()
  progress.close()
  ckpt.close()
  writer.close()
  return {**{f'train/{k}': v for k, v in last_train.items()},
          **{f'eval/{k}': v for k, v in last_eval.items()},
          'step': int(jax.device_get(state.step)), 'last_saved_step': last_saved}
