"""The model ladder x compute budgets of an IsoFLOP study, with each run's FLOPs.

    python experiments/scaling/ladder.py            # the ladder, its FLOPs against 6ND, the runs
    lm-jax sweep experiments/sweeps/scaling_ladder.py --dry-run   # the same runs as a sweep

Rungs: width d_model in WIDTHS (multiples of 16, 1.14-2x apart), depth
max(1, d_model // 32) (an aspect ratio of 32), heads of 16 dimensions, MLP
4 d_model: the quickstart decoder (byte vocabulary, learned positions, tied
embeddings, seq_len 128, batch 16). N grows 1.3-2.5x from one rung to the next.
For each budget C (train FLOPs) and rung, D = C / (train FLOPs per token)
tokens, rounded to whole steps; runs with fewer than MIN_STEPS steps or a
tokens-per-parameter ratio outside TOKENS_PER_PARAM are left out.

FLOPs: the project's own count, lm_jax.models.decoder.flops.flops_per_token(...)['train'],
is 3 x the forward matmul FLOPs (QKV and output projections, causal attention
scores and values over an average context of (L+1)/2, MLP, LM head over the
padded vocabulary). 6ND counts 6 FLOPs per parameter per token instead: it
counts the learned position table (no matmul) and leaves attention out. The
table printed by this script shows both; C below is always the project's count.
"""

import dataclasses
import math
import os
import sys

if __name__ == '__main__':  # run as a script: the repository root holds lm_jax and experiments
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lm_jax.config.loader import apply_overrides, load_config  # noqa: E402
from lm_jax.data.tokenizers import build_tokenizer  # noqa: E402
from lm_jax.models.decoder.flops import flops_per_token, num_params  # noqa: E402
from lm_jax.models.config import transformer_config_from  # noqa: E402
from lm_jax.sweep import Sweep  # noqa: E402

BASE_CONFIG = 'configs/quickstart.py'
WIDTHS = (16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256)
WIDTH_PER_LAYER = 32
HEAD_DIM = 16
BUDGETS = (1e12, 3e12, 1e13, 3e13)  # train FLOPs, the project's count
MIN_STEPS = 50
# D / N up to 2500: on the CPU budgets the best runs sit at D / N of 100-700 (docs/scaling.md),
# so the IsoFLOP profiles need the small rungs' long runs on their left.
TOKENS_PER_PARAM = (1.0, 2500.0)


@dataclasses.dataclass(frozen=True)
class Rung:
  """One model of the ladder and its size and per-token FLOPs."""
  num_layers: int
  d_model: int
  num_heads: int
  params: int                # N: every parameter (embeddings included, as Hoffmann et al.)
  params_non_embedding: int
  flops_per_token: float     # train = 3 x forward matmuls


@dataclasses.dataclass(frozen=True)
class LadderRun:
  """One (rung, budget) run: its steps, tokens D and compute C (project count and 6ND)."""
  rung: Rung
  budget: float
  steps: int
  tokens: int

  @property
  def flops(self) -> float:
    return self.rung.flops_per_token * self.tokens

  @property
  def flops_6nd(self) -> float:
    return 6.0 * self.rung.params * self.tokens

  def overrides(self) -> dict:
    """The sweep overrides of this run (model shape, steps, a warmup and evals that fit)."""
    return {'model.num_layers': self.rung.num_layers, 'model.d_model': self.rung.d_model,
            'model.num_heads': self.rung.num_heads, 'train.steps': self.steps,
            'optimizer.warmup_steps': max(1, min(100, self.steps // 20)),
            'train.eval_every': self.steps, 'train.log_every': max(1, self.steps // 100),
            'checkpoint.every': max(1, self.steps // 4)}


def _base(config: str):
  base = load_config(config)
  if base.data.tokenizer != 'byte':
    raise ValueError(f'{config}: the ladder counts parameters without reading data, so it '
                     'needs the byte tokenizer (vocabulary 256)')
  return base


def rungs(widths=WIDTHS, config: str = BASE_CONFIG) -> list[Rung]:
  """The ladder's models: depth max(1, d_model // WIDTH_PER_LAYER), heads of HEAD_DIM."""
  base = _base(config)
  vocab = build_tokenizer('byte').vocab_size
  out = []
  for d_model in widths:
    depth = max(1, d_model // WIDTH_PER_LAYER)
    cfg = apply_overrides(base.copy_and_resolve_references(), [
        f'--config.model.num_layers={depth}', f'--config.model.d_model={d_model}',
        f'--config.model.num_heads={d_model // HEAD_DIM}'])
    model_cfg = transformer_config_from(cfg.model, vocab, cfg.mesh)
    counts = num_params(model_cfg)
    out.append(Rung(num_layers=depth, d_model=d_model, num_heads=d_model // HEAD_DIM,
                    params=counts['total'], params_non_embedding=counts['non_embedding'],
                    flops_per_token=flops_per_token(model_cfg, cfg.data.seq_len)['train']))
  return out


def ladder_runs(budgets=BUDGETS, widths=WIDTHS, config: str = BASE_CONFIG,
                min_steps: int = MIN_STEPS, tokens_per_param=TOKENS_PER_PARAM
                ) -> list[LadderRun]:
  """Every (budget, rung) run with at least min_steps steps and D / N in tokens_per_param."""
  base = _base(config)
  tokens_per_step = base.train.global_batch_size * base.data.seq_len
  runs = []
  for budget in budgets:
    for rung in rungs(widths, config):
      steps = round(budget / (rung.flops_per_token * tokens_per_step))
      tokens = steps * tokens_per_step
      ratio = tokens / rung.params
      if steps >= min_steps and tokens_per_param[0] <= ratio <= tokens_per_param[1]:
        runs.append(LadderRun(rung=rung, budget=budget, steps=steps, tokens=tokens))
  return runs


def ladder_sweep(name: str = 'scaling_ladder', **kwargs) -> Sweep:
  """The ladder's runs as a sweep (every stdlib byte; names from layers, width, steps)."""
  runs = ladder_runs(**kwargs)
  return Sweep(name=name, config=kwargs.get('config', BASE_CONFIG),
               runs=[r.overrides() for r in runs],
               fixed={'data.max_bytes': 0, 'train.eval_batches': 32},
               name_keys=('model.num_layers', 'model.d_model', 'train.steps'))


def rung_table(ladder: list[Rung]) -> str:
  """Markdown: each rung's N, its train FLOPs per token, 6N, and their ratio."""
  lines = ['| layers | d_model | heads | N | N non-emb. | FLOPs/token (project) | 6N | ratio |',
           '|---|---|---|---|---|---|---|---|']
  for r in ladder:
    lines.append(f'| {r.num_layers} | {r.d_model} | {r.num_heads} | {r.params:,} | '
                 f'{r.params_non_embedding:,} | {r.flops_per_token:.3e} | {6 * r.params:.3e} | '
                 f'{r.flops_per_token / (6 * r.params):.3f} |')
  return '\n'.join(lines)


def run_table(runs: list[LadderRun]) -> str:
  """Markdown: each run's budget, model, steps, D, D / N, C (project) and 6ND."""
  lines = ['| budget C | layers | d_model | steps | D | D/N | C (project) | 6ND |',
           '|---|---|---|---|---|---|---|---|']
  for r in runs:
    lines.append(f'| {r.budget:.0e} | {r.rung.num_layers} | {r.rung.d_model} | {r.steps:,} | '
                 f'{r.tokens:,} | {r.tokens / r.rung.params:.1f} | {r.flops:.3e} | '
                 f'{r.flops_6nd:.3e} |')
  return '\n'.join(lines)


def main() -> None:
  """Prints the rung table and the run table."""
  print(rung_table(rungs()))
  print()
  runs = ladder_runs()
  print(run_table(runs))
  print(f'\n{len(runs)} runs, {sum(r.tokens for r in runs):,} tokens in all '
        f'(log10 of total project FLOPs: {math.log10(sum(r.flops for r in runs)):.2f})')


if __name__ == '__main__':
  main()
