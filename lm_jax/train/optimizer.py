"""optax optimizer and learning-rate schedule from the `optimizer` section."""

import jax
import ml_collections
import optax


def make_schedule(opt_cfg: ml_collections.ConfigDict,
                  total_steps: int) -> optax.Schedule:
  """Linear warmup, then cosine / linear decay to lr * min_lr_ratio, or constant."""
  peak, warmup = opt_cfg.lr, opt_cfg.warmup_steps
  decay_steps = opt_cfg.decay_steps or total_steps
  end = peak * opt_cfg.min_lr_ratio
  if opt_cfg.schedule == 'constant':
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)],
        [warmup]) if warmup else optax.constant_schedule(peak)
  if opt_cfg.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(
        0.0, peak, warmup, max(decay_steps, warmup + 1), end_value=end)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup),
       optax.linear_schedule(peak, end, max(decay_steps - warmup, 1))],
      [warmup])


def decay_mask(params):
  """Weight decay on matrices only: not on norms, biases (ndim < 2)."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(opt_cfg: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW with global-norm clipping; returns (optimizer, schedule)."""
  schedule = make_schedule(opt_cfg, total_steps)
  adamw = optax.adamw(schedule, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps,
                      weight_decay=opt_cfg.weight_decay, mask=decay_mask)
  if opt_cfg.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(opt_cfg.grad_clip), adamw), schedule
  return adamw, schedule
