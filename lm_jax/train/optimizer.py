"""optax optimizer, learning-rate schedule and weight penalties from the `optimizer` section."""

import math
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

# Which params are regularised (decoupled weight decay, optimizer.l1 / l2), by
# the leaf name every layer gives its param: what a param *is*, not its rank.
# Rank cannot tell: a scanned norm scale is [layers, D], a pipelined one
# [stage, layers/stage, D], an attention bias [heads, head_dim].
DECAYED_LEAVES = ('kernel', 'embedding')   # matmul weights, token/position tables
UNDECAYED_LEAVES = ('bias', 'scale')       # biases, norm scales and biases


def make_schedule(opt_cfg: ml_collections.ConfigDict,
                  total_steps: int) -> optax.Schedule:
  """nanoGPT's schedule: warmup lr * (t + 1) / (warmup + 1) for t < warmup, then
  cosine / linear decay to lr * min_lr_ratio at decay_steps (and after), or constant.

  t is the 0-based update: the first update already has lr / (warmup + 1) > 0.
  """
  peak, warmup, kind = opt_cfg.lr, opt_cfg.warmup_steps, opt_cfg.schedule
  decay_end = opt_cfg.decay_steps or total_steps
  end = peak * opt_cfg.min_lr_ratio
  span = decay_end - warmup  # >= 0: validate.py keeps warmup <= decay_steps

  def schedule(step):
    t = jnp.asarray(step, jnp.float32)
    warm = peak * (t + 1) / (warmup + 1)
    # The share of the decay done; a zero-length decay is done at once.
    frac = jnp.clip((t - warmup) / span, 0.0, 1.0) if span > 0 else jnp.ones_like(t)
    if kind == 'cosine':
      after = end + 0.5 * (1 + jnp.cos(math.pi * frac)) * (peak - end)
    elif kind == 'linear':
      after = peak + (end - peak) * frac
    else:
      after = jnp.full_like(t, peak)
    return jnp.where(t < warmup, warm, after)
  return schedule


def _leaf_name(path) -> str:
  """The last dict key of a param path ('kernel', 'bias', ...), skipping the
  attribute keys of boxed (nn.Partitioned) params."""
  keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
  return str(keys[-1]) if keys else ''


def decay_mask(params):
  """True for the params that weight decay and l1 / l2 apply to: kernels and
  embeddings, not biases or norm scales (whatever their rank)."""
  def is_decayed(path, _):
    name = _leaf_name(path)
    if name in DECAYED_LEAVES:
      return True
    if name in UNDECAYED_LEAVES:
      return False
    raise ValueError(
        f'no weight-decay rule for param {jax.tree_util.keystr(path)} (leaf name '
        f'{name!r}); name it one of {DECAYED_LEAVES} (decayed) or {UNDECAYED_LEAVES} '
        '(not decayed), or extend lm_jax/train/optimizer.py DECAYED_LEAVES')
  return jax.tree_util.tree_map_with_path(is_decayed, params)


def weight_penalty(opt_cfg: ml_collections.ConfigDict
                   ) -> Callable | None:
  """params -> (penalty, its gradient), penalty = l1 * sum|w| + l2 / 2 * sum w^2
  over the decay_mask params; None when l1 = l2 = 0.

  The penalty is added to the *mean* token loss (not divided by the token
  count). Its gradient is l1 * sign(w) + l2 * w (sign(0) = 0).
  """
  l1, l2 = opt_cfg.l1, opt_cfg.l2
  if not l1 and not l2:
    return None

  def penalty_and_grads(params):
    leaves, treedef = jax.tree.flatten(params)
    on = jax.tree.leaves(decay_mask(params))
    value, grads = jnp.zeros((), jnp.float32), []
    for w, decayed in zip(leaves, on):
      if not decayed:
        grads.append(jnp.zeros_like(w))
        continue
      w32 = w.astype(jnp.float32)  # sums in fp32 also for bf16 params
      value += l1 * jnp.sum(jnp.abs(w32)) + 0.5 * l2 * jnp.sum(w32 * w32)
      grads.append((l1 * jnp.sign(w32) + l2 * w32).astype(w.dtype))
    return value, jax.tree.unflatten(treedef, grads)
  return penalty_and_grads


def make_optimizer(opt_cfg: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW with global-norm clipping; returns (optimizer, schedule)."""
  schedule = make_schedule(opt_cfg, total_steps)
  adamw = optax.adamw(schedule, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps,
                      weight_decay=opt_cfg.weight_decay, mask=decay_mask)
  if opt_cfg.grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(opt_cfg.grad_clip), adamw), schedule
  return adamw, schedule
