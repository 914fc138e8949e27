"""Per-device memory of one train step: state, gradients, activations, temporaries.

The model follows what the compiled step holds at its peak (docs/planner.md):

* state (argument, donated and aliased by the output): params, AdamW's two
  moments (optax keeps them in the param dtype), plus the [B, L] batch;
* temporaries: the gradients (as sharded as the params; with gradient
  accumulation a float32 accumulator too), the all-gathered weights of one
  layer under FSDP, and the larger of two phases:
  - loss: the residuals every layer saved for the backward pass + the
    logits' working set (LOGITS_COPIES float32 [tokens, vocab / tensor]);
  - backward of the last layer: the residuals of the other layers + the layer
    being differentiated, recomputed whole under remat ('none': its saved
    residuals + the backward's scratch).

What a layer saves per token under each remat preset is counted tensor by
tensor in `saved_bytes_per_token`; the few constants that are not simply
"this tensor is kept" were measured on XLA:CPU with scanned layers
(experiments/validate_plan_memory.py).
"""

import dataclasses
import math

from lm_jax.models.attention import CAUSAL_BLOCK
from lm_jax.plan.candidate import Plan
from lm_jax.plan.shapes import ModelFacts, local_param_elements

# Float32 [tokens, vocab] arrays live at once around the loss (logits, their
# softmax and gradient): fitted on XLA:CPU.
LOGITS_COPIES = 2.0
# 'none': F-sized residuals per MLP hidden unit (gelu: the 6 that JAX saves
# for its tanh form, checked on XLA:CPU; swiglu: 7, fitted there) and D-sized
# ones per norm (fitted on XLA:CPU).
MLP_KEPT = {'gelu': 6, 'swiglu': 7}
NORM_KEPT = {'layernorm': 4, 'rmsnorm': 2}


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
  """Bytes on one device, by component."""
  params_bytes: float
  optimizer_bytes: float
  batch_bytes: float
  grads_bytes: float
  activations_bytes: float   # saved residuals + the peak phase's working set
  logits_bytes: float        # counted when the loss phase is the peak, else 0
  gathered_bytes: float      # FSDP: one layer's all-gathered weights + its full grads

  @property
  def argument_bytes(self) -> float:
    """What XLA reports as arguments: the state and the batch."""
    return self.params_bytes + self.optimizer_bytes + self.batch_bytes

  @property
  def temp_bytes(self) -> float:
    return (self.grads_bytes + self.activations_bytes + self.logits_bytes
            + self.gathered_bytes)

  @property
  def total_bytes(self) -> float:
    """Peak bytes: the donated state is updated in place, so arguments + temporaries."""
    return self.argument_bytes + self.temp_bytes

  def components(self) -> dict[str, float]:
    return {'params': self.params_bytes, 'optimizer': self.optimizer_bytes,
            'batch': self.batch_bytes, 'grads': self.grads_bytes,
            'activations': self.activations_bytes, 'logits': self.logits_bytes,
            'fsdp_gather': self.gathered_bytes}


def attention_kind(facts: ModelFacts, platform: str) -> str:
  """'cudnn' (flash: no [L, L] scores), 'blockwise' (causal blocks) or 'xla' (dense),
  as lm_jax/models/attention.py picks it on `platform`."""
  impl = facts.cfg.attention
  if impl == 'auto':
    impl = {'gpu': 'cudnn', 'cpu': 'blockwise'}.get(platform, 'xla')
  if impl == 'cudnn' and facts.cfg.dtype != 'bfloat16':
    return 'xla'
  return impl


def scores_per_query(facts: ModelFacts, kind: str) -> float:
  """Attention scores one query row materialises (per head)."""
  if kind == 'cudnn':
    return 0.0
  L = facts.seq_len
  if kind == 'blockwise':                # block [a, b) meets keys [0, b)
    blocks = -(-L // CAUSAL_BLOCK)
    return L * (blocks + 1) / (2 * blocks)
  return float(L)


def saved_bytes_per_token(facts: ModelFacts, plan: Plan, remat: str,
                          attention: str = 'xla') -> float:
  """Bytes one layer keeps for the backward pass, per token on this device."""
  cfg, b = facts.cfg, facts.compute_bytes
  tp, sp = plan.tensor, plan.sequence
  D, N, K, H, F = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim
  q = o = N * H / tp
  kv = 2 * K * H / tp * sp              # keys/values are gathered whole over `sequence`
  flash = attention == 'cudnn'
  scores_f32 = N / tp * scores_per_query(facts, attention)
  mlp_in = (2 if cfg.mlp == 'swiglu' else 1) * F / tp
  if remat == 'full':
    return D * b                        # the block's input only
  # dots without batch dims: q, k, v, attention projection, MLP up (and gate).
  dots = (D + q + kv + D + mlp_in) * b
  if remat == 'dots_with_no_batch_dims_saveable':
    return dots
  if remat == 'dots_saveable':          # + the batched dots: scores (f32) and probs @ v
    return dots + o * b + 4 * scores_f32
  norms = 2 * NORM_KEPT[cfg.norm] * D
  attention = N / tp * 4 + o * b if flash else 2 * 4 * scores_f32  # (lse) | scores, probs
  return (2 * D + norms + q + kv + o + MLP_KEPT[cfg.mlp] * F / tp) * b + attention


def backward_scratch_bytes_per_token(facts: ModelFacts, plan: Plan,
                                     attention: str = 'xla') -> float:
  """Gradients of the attention scores, MLP hidden and residual of one layer in flight."""
  cfg, b = facts.cfg, facts.compute_bytes
  scores_f32 = cfg.num_heads / plan.tensor * scores_per_query(facts, attention)
  return 3 * 4 * scores_f32 + (2 * cfg.mlp_dim / plan.tensor + 2 * cfg.d_model) * b


def pipelined(facts: ModelFacts, plan: Plan) -> bool:
  """Whether the plan runs the model's layers as a pipeline over `stage`."""
  return plan.stage > 1 and facts.pipelined


def tokens_per_device(facts: ModelFacts, plan: Plan) -> float:
  """Tokens of one gradient-accumulation microbatch on one device."""
  rows = facts.global_batch / plan.microbatches / (plan.data * plan.fsdp)
  return rows * facts.seq_len / plan.sequence


def activation_phases(facts: ModelFacts, plan: Plan, platform: str) -> tuple[float, float]:
  """(backward-phase bytes, loss-phase bytes) of the activations on one device.

  Pipeline (GPipe, lm_jax/models/pipeline.py): a stage runs its layers/stage
  layers in every one of the M + S - 1 iterations (idle ones on filler), and
  the iteration scan keeps all their residuals and its [micro, L, D] buffer.
  """
  cfg = facts.cfg
  attention = attention_kind(facts, platform)
  tokens = tokens_per_device(facts, plan)
  saved = saved_bytes_per_token(facts, plan, plan.remat, attention)
  working_tokens = tokens
  kept = cfg.num_layers * saved * tokens
  if pipelined(facts, plan):
    iterations = plan.pipeline_microbatches + plan.stage - 1
    working_tokens = tokens / plan.pipeline_microbatches
    kept = (cfg.num_layers // plan.stage * saved + cfg.d_model * facts.compute_bytes
            ) * iterations * working_tokens
  saved *= working_tokens
  if plan.remat == 'none':
    backward = kept + backward_scratch_bytes_per_token(facts, plan, attention) * working_tokens
  else:   # the layer being differentiated is recomputed whole
    backward = kept - saved + saved_bytes_per_token(facts, plan, 'none', attention) * working_tokens
  vocab = -(-cfg.padded_vocab_size // plan.tensor)
  loss = kept + LOGITS_COPIES * 4 * tokens * vocab   # logits run outside the pipeline
  return backward, loss


def estimate_memory(facts: ModelFacts, plan: Plan, platform: str = 'gpu') -> MemoryEstimate:
  """The MemoryEstimate of running `facts`' train step under `plan` on `platform`."""
  rules, mesh = plan.rules(), plan.mesh_shape
  params = local_param_elements(facts, rules, mesh)
  params_bytes = params * facts.param_bytes
  grads_bytes = params * facts.param_bytes
  if plan.microbatches > 1:
    grads_bytes += params * 4           # float32 accumulator
  rows = facts.global_batch / (plan.data * plan.fsdp)
  batch_bytes = rows * facts.seq_len * 12   # inputs, targets int32; weights f32
  backward, loss = activation_phases(facts, plan, platform)
  gathered = 0.0
  if plan.fsdp > 1:   # one layer's weights all-gathered (cast to the compute dtype)
    layer_params = local_param_elements(facts, rules, dict(mesh, fsdp=1), per_layer=True)
    layers = facts.cfg.num_layers // plan.stage if pipelined(facts, plan) else facts.cfg.num_layers
    gathered = layer_params / layers * facts.compute_bytes
  return MemoryEstimate(params_bytes=params_bytes, optimizer_bytes=2 * params_bytes,
                        batch_bytes=batch_bytes, grads_bytes=grads_bytes,
                        activations_bytes=backward, logits_bytes=max(loss - backward, 0.0),
                        gathered_bytes=gathered)


def fmt_bytes(num_bytes: float) -> str:
  """'1.23 GiB'-style text."""
  for unit, size in (('GiB', 2 ** 30), ('MiB', 2 ** 20), ('KiB', 2 ** 10)):
    if abs(num_bytes) >= size:
      return f'{num_bytes / size:.2f} {unit}'
  return f'{num_bytes:.0f} B'


def parse_bytes(text: str) -> float:
  """'80GB', '80 GiB', '16e9' -> bytes (GB = 1e9, GiB = 2**30)."""
  units = {'tib': 2 ** 40, 'gib': 2 ** 30, 'mib': 2 ** 20, 'kib': 2 ** 10,
           'tb': 1e12, 'gb': 1e9, 'mb': 1e6, 'kb': 1e3, 'b': 1}
  clean = text.strip().lower().replace(' ', '')
  for unit, size in units.items():
    if clean.endswith(unit):
      return float(clean[:-len(unit)]) * size
  value = float(clean)
  if not math.isfinite(value) or value <= 0:
    raise ValueError(text)
  return value
