"""The planner's memory estimate against XLA's compiled memory_analysis(), on 8 CPU devices.

    python experiments/validate_plan_memory.py [--quick] [--out table.md]

For each (model, mesh, remat) combination: compile the real train step (no
run; lm_jax/plan/xla_memory.py) and compare per-device argument bytes (state +
batch), temporaries and their sum with lm_jax/plan/memory.py's estimate.
Then the remat presets on one config: compiled temp memory with scanned and
with unrolled layers. Models are small (d_model 256, 4 layers, L 256,
batch 16), float32 (XLA:CPU computes bf16 in f32), layers scanned, dense XLA
attention (what TPUs run). Prints markdown tables (docs/planner.md).
"""

import argparse
import os
import sys
import time

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lm_jax.config.defaults import base_config  # noqa: E402
from lm_jax.config.loader import apply_overrides  # noqa: E402
from lm_jax.plan.xla_memory import estimate_vs_xla, xla_memory_bytes  # noqa: E402

VOCAB = 256
MODELS = {
    'gpt': ['model.d_model=256', 'model.num_heads=8', 'model.num_layers=4'],
    'llama': ['model.d_model=256', 'model.num_heads=8', 'model.num_layers=4',
              'model.num_kv_heads=2', 'model.position=rope', 'model.norm=rmsnorm',
              'model.mlp=swiglu', 'model.tie_embeddings=false'],
}
COMMON = ['model.max_len=256', 'data.seq_len=256', 'train.global_batch_size=16',
          'model.scan_layers=true', 'model.attention=xla', 'mesh.data=-1']
# (model, mesh/remat/microbatch overrides)
COMBOS = [
    ('gpt', 'mesh.data=8 model.remat=none'),
    ('gpt', 'mesh.data=8 model.remat=dots_saveable'),
    ('gpt', 'mesh.data=8 model.remat=dots_with_no_batch_dims_saveable'),
    ('gpt', 'mesh.data=8 model.remat=full'),
    ('gpt', 'mesh.data=1 mesh.fsdp=8 model.remat=full'),
    ('gpt', 'mesh.data=2 mesh.tensor=4 model.remat=full'),
    ('gpt', 'mesh.data=2 mesh.fsdp=2 mesh.tensor=2 model.remat=dots_saveable'),
    ('gpt', 'mesh.data=8 model.remat=full model.vocab_size=16384'),
    ('gpt', 'mesh.data=8 model.remat=none train.microbatches=2'),
    ('llama', 'mesh.data=2 mesh.fsdp=4 model.remat=dots_saveable'),
    ('llama', 'mesh.data=4 mesh.tensor=2 model.remat=full train.microbatches=2'),
    ('llama', 'mesh.data=1 mesh.fsdp=4 mesh.tensor=2 model.remat=none'),
    ('gpt', 'mesh.data=2 mesh.stage=4 mesh.pipeline_microbatches=4 model.remat=full'),
    ('gpt', 'mesh.data=4 mesh.stage=2 mesh.pipeline_microbatches=2 model.remat=none'),
    ('gpt', 'mesh.data=2 mesh.sequence=4 model.remat=full'),
]
QUICK = COMBOS[:6]
REMATS = ('none', 'dots_saveable', 'dots_with_no_batch_dims_saveable', 'full')


def make_config(model: str, overrides: str):
  config = base_config()
  apply_overrides(config, ['--config.' + o for o in MODELS[model] + COMMON + overrides.split()])
  return config


def mib(num_bytes: float) -> str:
  return f'{num_bytes / 2 ** 20:.1f}'


def pct(estimate: float, actual: float) -> str:
  return f'{100 * (estimate / actual - 1):+.1f}%' if actual else 'n/a'


def validation_table(combos) -> list[str]:
  rows = ['| model | mesh, remat, microbatches | argument MiB est / XLA | temp MiB est / XLA '
          '(err) | total MiB est / XLA | total err | largest estimated terms (MiB) |',
          '|---|---|---|---|---|---|---|']
  for model, overrides in combos:
    start = time.time()
    result = estimate_vs_xla(make_config(model, overrides), VOCAB)
    est, xla = result['estimate'], result['xla']
    terms = sorted(((k, est[k]) for k in ('grads', 'activations', 'logits', 'fsdp_gather')),
                   key=lambda kv: -kv[1])[:2]
    rows.append(
        f'| {model} | {overrides.replace("mesh.", "").replace("model.", "").replace("train.", "")} '
        f'| {mib(est["argument"])} / {mib(xla["argument"])} '
        f'| {mib(est["temp"])} / {mib(xla["temp"])} ({pct(est["temp"], xla["temp"])}) '
        f'| {mib(est["total"])} / {mib(xla["total"])} | {pct(est["total"], xla["total"])} '
        f'| {", ".join(f"{k} {mib(v)}" for k, v in terms)} |')
    print(rows[-1], f'({time.time() - start:.0f} s)', file=sys.stderr, flush=True)
  return rows


def remat_table() -> list[str]:
  rows = ['| remat | temp MiB, scanned layers | temp MiB, unrolled layers |', '|---|---|---|']
  for remat in REMATS:
    temps = []
    for scan in ('true', 'false'):
      config = make_config('gpt', f'mesh.data=8 model.remat={remat} model.scan_layers={scan}')
      temps.append(mib(xla_memory_bytes(config, VOCAB)['temp']))
    rows.append(f'| {remat} | {temps[0]} | {temps[1]} |')
    print(rows[-1], file=sys.stderr, flush=True)
  return rows


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--quick', action='store_true', help='the first 6 combinations only')
  parser.add_argument('--out', default='')
  args = parser.parse_args()
  lines = ['### Estimate vs XLA memory_analysis (per device, 8 CPU devices)', '']
  lines += validation_table(QUICK if args.quick else COMBOS)
  lines += ['', '### Remat presets: compiled temp memory (gpt, data=8)', '']
  lines += remat_table()
  text = '\n'.join(lines)
  print(text)
  if args.out:
    with open(args.out, 'w') as f:
      f.write(text + '\n')


if __name__ == '__main__':
  main()
