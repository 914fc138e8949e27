"""Enumerate every allocation of a device count, estimate each, rank the ones that fit.

Candidates: every factorisation of the devices over the mesh axes, every remat
preset, every gradient-accumulation count dividing the global batch, and for
pipelines a few pipeline microbatch counts. The shape constraints of
lm_jax/config/validate.py are checked cheaply first (plus seq_len % sequence);
the plans returned are also run through `validate` itself.
"""

import dataclasses
import functools

import ml_collections

from lm_jax.config import derived
from lm_jax.config.validate import validate
from lm_jax.errors import ConfigError
from lm_jax.parallel.rules import MESH_AXES
from lm_jax.plan.candidate import Plan, apply_plan
from lm_jax.plan.cost import StepTime, estimate_step_time, mfu
from lm_jax.plan.interconnect import DeviceSpec
from lm_jax.plan.memory import MemoryEstimate, estimate_memory
from lm_jax.plan.shapes import ModelFacts, model_facts

REMAT_PRESETS = ('none', 'dots_saveable', 'dots_with_no_batch_dims_saveable', 'full')


@dataclasses.dataclass(frozen=True)
class Estimate:
  """A plan with its memory and time estimates on one device kind."""
  plan: Plan
  memory: MemoryEstimate
  time: StepTime
  tokens_per_s: float
  mfu: float
  fits: bool


def divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


def mesh_shapes(num_devices: int, axes=MESH_AXES):
  """Every {axis: size} with sizes multiplying to num_devices (ordered factorisations)."""
  if len(axes) == 1:
    yield {axes[0]: num_devices}
    return
  for size in divisors(num_devices):
    for rest in mesh_shapes(num_devices // size, axes[1:]):
      yield {axes[0]: size, **rest}


def shape_problem(config: ml_collections.ConfigDict, vocab_size: int, plan: Plan) -> str:
  """Why the model / batch cannot split as `plan` says ('' if it can)."""
  m, tp = config.model, plan.tensor
  micro, batch_parallel = config.train.global_batch_size // plan.microbatches, plan.data * plan.fsdp
  checks = (
      (config.train.global_batch_size % plan.microbatches, 'batch % microbatches'),
      (micro % batch_parallel, 'microbatch % (data * fsdp)'),
      (m.num_heads % tp, 'heads % tensor'),
      (derived.num_kv_heads(m) % tp, 'kv heads % tensor'),
      (derived.mlp_dim(m) % tp, 'mlp_dim % tensor'),
      (derived.padded_vocab_size(vocab_size, m.vocab_multiple) % tp, 'vocab % tensor'),
      (m.d_model % plan.fsdp, 'd_model % fsdp'),
      (config.data.seq_len % plan.sequence, 'seq_len % sequence'),
      (m.num_layers % plan.stage, 'layers % stage'),
      (plan.stage > 1 and plan.sequence > 1, 'stage with sequence (untested)'),
      (plan.stage > 1 and (micro % plan.pipeline_microbatches
                           or (micro // plan.pipeline_microbatches) % batch_parallel),
       'pipeline microbatch % (data * fsdp)'),
  )
  return next((why for bad, why in checks if bad), '')


def candidate_plans(config: ml_collections.ConfigDict, vocab_size: int, num_devices: int,
                    remats=REMAT_PRESETS):
  """Every Plan whose shapes divide (see shape_problem)."""
  batch = config.train.global_batch_size
  for mesh in mesh_shapes(num_devices):
    pipeline_counts = [1]
    if mesh['stage'] > 1:
      pipeline_counts = [mesh['stage'] * k for k in (1, 2, 4, 8)]
    for remat in remats:
      for micro in divisors(batch):
        for pm in pipeline_counts:
          plan = Plan(**mesh, remat=remat, microbatches=micro, pipeline_microbatches=pm)
          if not shape_problem(config, vocab_size, plan):
            yield plan


class FactsByStage:
  """ModelFacts for each pipeline stage count (the param tree depends on it)."""

  def __init__(self, config, vocab_size: int):
    self._get = functools.cache(lambda stage: model_facts(config, vocab_size, stage))

  def __call__(self, stage: int) -> ModelFacts:
    return self._get(stage)


def estimate(facts: ModelFacts, plan: Plan, spec: DeviceSpec, efficiency: float = 0.6,
             overlap: float = 0.0) -> Estimate:
  """Memory and time of one plan."""
  memory = estimate_memory(facts, plan, spec.platform)
  time = estimate_step_time(facts, plan, spec, efficiency, overlap)
  tokens = facts.global_batch * facts.seq_len
  return Estimate(plan=plan, memory=memory, time=time, tokens_per_s=tokens / time.step_s,
                  mfu=mfu(time, plan, spec, facts.cfg.dtype),
                  fits=memory.total_bytes <= spec.usable_bytes)


def rank_key(e: Estimate):
  """Fastest first; at equal time less communication, then less memory."""
  return (round(e.time.step_s, 12), e.time.total_comm_s, e.memory.total_bytes)


def search(config: ml_collections.ConfigDict, vocab_size: int, num_devices: int,
           spec: DeviceSpec, *, top: int = 10, efficiency: float = 0.6,
           overlap: float = 0.0) -> tuple[list[Estimate], Estimate | None, int]:
  """(best `top` feasible estimates, the smallest-memory estimate, candidates tried).

  Every returned plan passes lm_jax.config.validate.validate on num_devices.
  """
  facts = FactsByStage(config, vocab_size)
  estimates = []
  for plan in candidate_plans(config, vocab_size, num_devices):
    stage_facts = facts(plan.stage)
    if plan.stage > 1 and not stage_facts.pipelined:
      continue
    estimates.append(estimate(stage_facts, plan, spec, efficiency, overlap))
  smallest = min(estimates, key=lambda e: e.memory.total_bytes, default=None)
  best = []
  for e in sorted((e for e in estimates if e.fits), key=rank_key):
    try:
      validate(apply_plan(config, e.plan), device_count=num_devices)
    except ConfigError:
      continue
    best.append(e)
    if len(best) == top:
      break
  return best, smallest, len(estimates)
