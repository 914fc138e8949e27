"""Step time of a plan: matmul FLOPs over the peak, plus collectives over each axis' bandwidth.

Compute: lm_jax/models/decoder/flops.py's counts with the plan's remat recompute
(and the full L x L scores where dense XLA attention computes them), split
over the devices that share the work, at `efficiency` x the device's peak.

Communication per step and device (ring collectives: an all-gather or
reduce-scatter of X bytes moves (n-1)/n X per device, an all-reduce twice that):

* fsdp: all-gather the weights (compute dtype) in the forward and again in the
  backward, reduce-scatter the gradients; once per gradient-accumulation microbatch;
* data (and sequence): all-reduce of the gradients, once per microbatch (the
  compiled step keeps it inside the accumulation loop);
* tensor (Megatron): 2 all-reduces of [tokens, d_model] per layer in the
  forward, 2 in the backward, 2 more in the recompute under remat 'full';
  2 for the vocabulary-parallel embedding and logits;
* sequence: all-gather of the keys and values per layer, reduce-scatter of
  their gradients (and the recompute under 'full');
* stage: one [micro tokens, d_model] send per pipeline iteration each way; the
  bubble is in the compute term (idle stages still run, lm_jax/models/pipeline.py).

`overlap` is the share of the fsdp and data collectives hidden behind compute
(0: none, the default). Nothing here is measured on multi-device hardware.
"""

import dataclasses

from lm_jax.models.decoder import flops
from lm_jax.plan.candidate import Plan
from lm_jax.plan.interconnect import DeviceSpec, axis_bandwidth
from lm_jax.plan.memory import attention_kind, pipelined, tokens_per_device
from lm_jax.plan.shapes import ModelFacts, local_param_elements


@dataclasses.dataclass(frozen=True)
class StepTime:
  """Seconds of one train step on one device, and the FLOPs behind them."""
  compute_s: float
  comm_s: dict[str, float]         # per mesh axis
  exposed_comm_s: float            # what is not hidden behind compute
  model_flops: float               # per step, all devices (MFU's numerator)
  device_flops: float              # per step on one device, with recompute and bubble
  bubble_fraction: float

  @property
  def step_s(self) -> float:
    return self.compute_s + self.exposed_comm_s

  @property
  def total_comm_s(self) -> float:
    return sum(self.comm_s.values())


def collective_seconds(num_bytes: float, n: int, spec: DeviceSpec, mesh_shape: dict,
                       axes, kind: str = 'all_gather', count: float = 1.0) -> float:
  """`count` ring collectives of `num_bytes` (the gathered size) over `axes` of size n."""
  if n <= 1 or num_bytes <= 0:
    return 0.0
  bandwidth, latency = axis_bandwidth(spec, mesh_shape, axes)
  passes = 2.0 if kind == 'all_reduce' else 1.0
  return count * passes * ((n - 1) / n * num_bytes / bandwidth + latency)


def device_flops(facts: ModelFacts, plan: Plan, platform: str) -> float:
  """Matmul FLOPs one device runs per step: recompute, dense scores, idle pipeline stages."""
  cfg = dataclasses.replace(facts.cfg, remat=plan.remat)
  dense = attention_kind(facts, platform) == 'xla'   # computes the masked half too
  per_token = flops.flops_per_token(cfg, facts.seq_len, causal=not dense)
  head = 3 * per_token['lm_head']
  blocks = per_token['train_remat'] - head
  tokens = facts.global_batch * facts.seq_len / (plan.data * plan.fsdp * plan.sequence)
  if pipelined(facts, plan):   # M + S - 1 iterations of layers / S, on every stage
    iterations = plan.pipeline_microbatches + plan.stage - 1
    blocks = blocks / plan.stage * iterations / plan.pipeline_microbatches
  return (blocks + head) * tokens / plan.tensor


def comm_seconds(facts: ModelFacts, plan: Plan, spec: DeviceSpec) -> dict[str, float]:
  """Seconds of each axis' collectives per step on one device."""
  cfg, mesh, rules = facts.cfg, plan.mesh_shape, plan.rules()
  b_c, b_p, M = facts.compute_bytes, facts.param_bytes, plan.microbatches
  local = local_param_elements(facts, rules, mesh)
  unsharded = local_param_elements(facts, rules, dict(mesh, fsdp=1))
  tokens = tokens_per_device(facts, plan)
  layers = cfg.num_layers // plan.stage if pipelined(facts, plan) else cfg.num_layers
  iterations = 1.0
  if pipelined(facts, plan):
    iterations = (plan.pipeline_microbatches + plan.stage - 1) / plan.pipeline_microbatches
  out = {}
  out['fsdp'] = (collective_seconds(unsharded * b_c, plan.fsdp, spec, mesh, 'fsdp', count=2 * M)
                 + collective_seconds(unsharded * b_p, plan.fsdp, spec, mesh, 'fsdp',
                                      'reduce_scatter', count=M))
  grad_sync = plan.data * plan.sequence
  out['data'] = collective_seconds(local * b_p, grad_sync, spec, mesh, ('data', 'sequence'),
                                   'all_reduce', count=M)
  activation = tokens * cfg.d_model * b_c
  per_layer = 6 if plan.remat == 'full' else 4
  out['tensor'] = collective_seconds(
      activation, plan.tensor, spec, mesh, 'tensor', 'all_reduce',
      count=M * (per_layer * layers * iterations + 2))
  kv = 2 * tokens * plan.sequence * cfg.num_kv_heads * cfg.head_dim / plan.tensor * b_c
  passes = 3 if plan.remat == 'full' else 2
  out['sequence'] = collective_seconds(kv, plan.sequence, spec, mesh, 'sequence',
                                       count=M * passes * layers * iterations)
  out['stage'] = 0.0
  if pipelined(facts, plan):
    bandwidth, latency = axis_bandwidth(spec, mesh, 'stage')
    sends = 2 * M * (plan.pipeline_microbatches + plan.stage - 1)
    micro = activation / plan.pipeline_microbatches
    out['stage'] = sends * (micro / bandwidth + latency)
  return out


def estimate_step_time(facts: ModelFacts, plan: Plan, spec: DeviceSpec,
                       efficiency: float = 0.6, overlap: float = 0.0) -> StepTime:
  """StepTime of `plan` on devices `spec` at `efficiency` x peak matmul throughput."""
  peak = spec.peak_flops(facts.cfg.dtype)
  per_device = device_flops(facts, plan, spec.platform)
  compute_s = per_device / (peak * efficiency)
  comm = comm_seconds(facts, plan, spec)
  hidden = overlap * (comm['fsdp'] + comm['data'])
  exposed = max(sum(comm.values()) - min(hidden, compute_s), 0.0)
  model = flops.flops_per_token(facts.cfg, facts.seq_len)['train'] * facts.global_batch \
      * facts.seq_len
  bubble = 0.0
  if pipelined(facts, plan):
    bubble = (plan.stage - 1) / (plan.pipeline_microbatches + plan.stage - 1)
  return StepTime(compute_s=compute_s, comm_s=comm, exposed_comm_s=exposed,
                  model_flops=model, device_flops=per_device, bubble_fraction=bubble)


def mfu(step: StepTime, plan: Plan, spec: DeviceSpec, dtype: str) -> float:
  """Model FLOPs utilisation the estimate implies."""
  return step.model_flops / (step.step_s * plan.num_devices * spec.peak_flops(dtype))
