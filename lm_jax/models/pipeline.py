"""Pipeline parallelism: the decoder's blocks in `stage` groups, fed
microbatches on a GPipe schedule (the vmap-over-stages pattern).

Stage params are stacked [stages, layers_per_stage, ...] with logical axes
('stage', 'layers', ...), so each group of devices on the `stage` mesh axis
holds one stage. A state buffer [stages, micro_B, L, D] holds every stage's
input; one iteration applies all stages at once (vmap, split over `stage`),
then rotates the buffer by one stage, which GSPMD lowers to a
collective-permute. Microbatch m reaches stage s at iteration m + s, so a step
takes microbatches + stages - 1 iterations, stages - 1 of them partly idle.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.models.config import TransformerConfig

BUFFER_AXES = ('stage', 'batch', 'length', 'act_embed')
MICRO_AXES = (None, 'batch', 'length', 'act_embed')


def gpipe_schedule(stages: int, microbatches: int) -> np.ndarray:
  """[iterations, stages]: the microbatch each stage works on (-1: idle)."""
  t_Tx1 = np.arange(microbatches + stages - 1)[:, None]
  micro_TxS = t_Tx1 - np.arange(stages)[None, :]
  return np.where((micro_TxS >= 0) & (micro_TxS < microbatches), micro_TxS, -1)


def bubble_fraction(stages: int, microbatches: int) -> float:
  """Idle share of the stage-iterations of GPipe: (S - 1) / (M + S - 1)."""
  return (stages - 1) / (microbatches + stages - 1)


def split_microbatches(x_Bx, num_micro: int):
  """[B, ...] -> [M, B/M, ...], microbatch m = rows m, m+M, ...: every
  microbatch stays spread over all batch shards (no resharding)."""
  x = x_Bx.reshape((x_Bx.shape[0] // num_micro, num_micro) + x_Bx.shape[1:])
  return jnp.swapaxes(x, 0, 1)


def merge_microbatches(x_Mx):
  """Inverse of split_microbatches."""
  x = jnp.swapaxes(x_Mx, 0, 1)
  return x.reshape((-1,) + x.shape[2:])


def _rotate_right(x_Sx):
  """Slot s <- slot s-1 (the last wraps to 0), from static slices so that a
  split stage axis becomes a collective-permute rather than a gather."""
  return jnp.concatenate([x_Sx[-1:], x_Sx[:-1]], axis=0)


class _Stage(nn.Module):
  """One stage: its layers_per_stage blocks in sequence (nn.scan)."""
  cfg: TransformerConfig
  deterministic: bool
  block: Any  # a (carry, x) -> (carry, None) block class, as nn.scan wants

  @nn.compact
  def __call__(self, x_BxLxD, positions_BxL, mask):
    cfg = self.cfg
    x_BxLxD, _ = nn.scan(
        self.block, variable_axes={'params': 0},
        split_rngs={'params': True, 'dropout': True},
        in_axes=(nn.broadcast, nn.broadcast),
        length=cfg.num_layers // cfg.num_stages,
        metadata_params={nn.PARTITION_NAME: 'layers'},
    )(cfg, self.deterministic, name='layers')(x_BxLxD, positions_BxL,
                                                mask)
    return x_BxLxD


def _iteration(pipeline, carry, t, inputs):
  """One schedule step: feed stage 0, shift the buffer, run every stage."""
  state_SxmBxLxD, micro_S = carry
  x_MxmBxLxD, positions_MxmBxL, mask_Mx = inputs
  num_micro = x_MxmBxLxD.shape[0]
  stage_S = jnp.arange(micro_S.shape[0])
  # Stage 0 takes microbatch t (idle once all went in); stage s takes what
  # stage s-1 produced last iteration. Ids travel with the data.
  fresh = jnp.where(t < num_micro, t, -1)
  micro_S = jnp.where(stage_S == 0, fresh, _rotate_right(micro_S))
  x_mBxLxD = x_MxmBxLxD[jnp.clip(t, 0, num_micro - 1)]
  state_SxmBxLxD = jnp.where(stage_S[:, None, None, None] == 0, x_mBxLxD[None],
                             _rotate_right(state_SxmBxLxD))
  state_SxmBxLxD = nn.with_logical_constraint(state_SxmBxLxD, BUFFER_AXES)
  # Idle stages compute on finite filler (zeros or a repeat) whose outputs
  # are never read, so they add nothing to the loss or the gradients.
  valid_S = jnp.maximum(micro_S, 0)
  mask_Sx = jax.tree.map(lambda m: m[valid_S], mask_Mx)
  state_SxmBxLxD = pipeline.stages(state_SxmBxLxD, positions_MxmBxL[valid_S],
                                   mask_Sx)
  state_SxmBxLxD = nn.with_logical_constraint(state_SxmBxLxD, BUFFER_AXES)
  return (state_SxmBxLxD, micro_S), (state_SxmBxLxD[-1], micro_S)


class Pipeline(nn.Module):
  """x [B, L, D] -> the blocks' output [B, L, D], computed as a pipeline."""
  cfg: TransformerConfig
  deterministic: bool
  block: Any

  def setup(self):
    # Stage s's params are slice s of every leaf: 'stage' is split over the
    # `stage` mesh axis, and so is the vmapped dim of activations inside.
    self.stages = nn.vmap(
        _Stage, variable_axes={'params': 0},
        split_rngs={'params': True, 'dropout': True},
        spmd_axis_name='stage',
        metadata_params={nn.PARTITION_NAME: 'stage'},
    )(self.cfg, self.deterministic, self.block)

  def __call__(self, x_BxLxD, positions_BxL, mask):
    cfg = self.cfg
    num_stages, num_micro = cfg.num_stages, cfg.pipeline_microbatches
    if x_BxLxD.shape[0] % num_micro:
      raise ValueError(f'batch {x_BxLxD.shape[0]} is not divisible by the '
                       f'{num_micro} pipeline microbatches')
    x_MxmBxLxD = nn.with_logical_constraint(
        split_microbatches(x_BxLxD, num_micro), MICRO_AXES)
    # Every array of the mask (segment ids, ...) is split like the batch.
    mask_Mx = jax.tree.map(lambda m: split_microbatches(m, num_micro), mask)
    inputs = (x_MxmBxLxD, split_microbatches(positions_BxL, num_micro), mask_Mx)

    schedule_TxS = gpipe_schedule(num_stages, num_micro)
    state_SxmBxLxD = jnp.zeros((num_stages,) + x_MxmBxLxD.shape[1:],
                               x_MxmBxLxD.dtype)
    micro_S = jnp.full((num_stages,), -1, jnp.int32)
    run = nn.scan(_iteration, variable_broadcast='params',
                  split_rngs={'params': False, 'dropout': True},
                  in_axes=(0, nn.broadcast), length=len(schedule_TxS))
    _, (last_TxmBxLxD, micro_TxS) = run(
        self, (state_SxmBxLxD, micro_S), jnp.arange(len(schedule_TxS)), inputs)
    # The schedule actually run (which microbatch each stage held), for tests.
    self.sow('intermediates', 'schedule', micro_TxS)
    # Microbatch m leaves the last stage at the iteration the schedule says.
    done_M = [int(np.flatnonzero(schedule_TxS[:, -1] == m)[0])
              for m in range(num_micro)]
    return merge_microbatches(last_TxmBxLxD[np.array(done_M)])
