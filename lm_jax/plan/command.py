"""`lm-jax plan`: the best allocation of N devices for a config, or a check of its own.

  lm-jax plan --config configs/llama_1b.py --devices 64 --device h100
  lm-jax plan --config configs/gpt2_small.py --devices 8 --device h100 --check

Needs no data and no accelerator: shapes come from jax.eval_shape on the CPU.
Exit 0 with a plan; 1 when nothing fits (or, with --check, the config's own
plan does not); 2 for a user error.
"""

import argparse
import dataclasses
import os

import ml_collections

from lm_jax.errors import ConfigError

DESCRIPTION = '''options after --config:
  --devices N            devices to plan for (required)
  --device KIND          h100 | h200 | a100 | a100-40gb | tpu-v4 | tpu-v5e | tpu-v5p | tpu-v6e
  --device-memory SIZE   memory per device, e.g. 80GB or 24GiB (overrides --device's)
  --device-flops F       peak FLOP/s per device (overrides --device's)
  --memory-fraction F    usable share of the memory (GPU default 0.75: JAX's preallocation)
  --devices-per-node N   devices per NVLink node / TPU slice
  --intra-node-bandwidth GB/s, --inter-node-bandwidth GB/s   per device, one direction
  --vocab-size N         vocabulary when the config does not fix it (char tokenizer)
  --efficiency F         achieved share of peak matmul FLOP/s (default 0.6)
  --overlap F            share of fsdp/data collectives hidden behind compute (default 0)
  --top K                plans to list (default 10)
  --check                estimate the config's own mesh, remat, microbatches; refuse if too big'''


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='lm-jax plan', add_help=False)
  p.add_argument('--devices', type=int, required=True)
  p.add_argument('--device', default='')
  p.add_argument('--device-memory', default='')
  p.add_argument('--device-flops', type=float, default=0.0)
  p.add_argument('--memory-fraction', type=float, default=0.0)
  p.add_argument('--devices-per-node', type=int, default=0)
  p.add_argument('--intra-node-bandwidth', type=float, default=0.0)
  p.add_argument('--inter-node-bandwidth', type=float, default=0.0)
  p.add_argument('--vocab-size', type=int, default=0)
  p.add_argument('--efficiency', type=float, default=0.6)
  p.add_argument('--overlap', type=float, default=0.0)
  p.add_argument('--top', type=int, default=10)
  p.add_argument('--check', action='store_true')
  return p


def parse_args(rest: list[str]) -> argparse.Namespace:
  """The plan flags; ConfigError (exit 2) for anything unknown or missing."""
  args, unknown = _parser().parse_known_args(rest)
  if unknown:
    raise ConfigError(f'unknown arguments for plan: {" ".join(unknown)}\n{DESCRIPTION}')
  if args.devices < 1:
    raise ConfigError(f'--devices must be >= 1 (got {args.devices})')
  if not args.device and not (args.device_memory and args.device_flops):
    raise ConfigError('give --device KIND, or both --device-memory and --device-flops\n'
                      + DESCRIPTION)
  if not 0 < args.efficiency <= 1 or not 0 <= args.overlap <= 1:
    raise ConfigError('--efficiency must be in (0, 1] and --overlap in [0, 1]')
  return args


def device_spec(args):
  """The DeviceSpec the flags describe."""
  from lm_jax.plan.interconnect import DEVICES, custom_device
  from lm_jax.plan.memory import parse_bytes
  base = DEVICES['h100']
  if args.device:
    if args.device.lower() not in DEVICES:
      raise ConfigError(f'--device {args.device!r} is not known; choose one of '
                        f'{", ".join(DEVICES)} or give --device-memory and --device-flops')
    base = DEVICES[args.device.lower()]
  try:
    memory = parse_bytes(args.device_memory) if args.device_memory else 0.0
  except ValueError as e:
    raise ConfigError(f'--device-memory {args.device_memory!r}: not a size like 80GB') from e
  spec = custom_device(base, memory_bytes=memory, peak_flops=args.device_flops,
                       devices_per_node=args.devices_per_node,
                       intra_bytes_per_s=args.intra_node_bandwidth * 1e9,
                       inter_bytes_per_s=args.inter_node_bandwidth * 1e9)
  if args.memory_fraction:
    spec = dataclasses.replace(spec, usable_fraction=args.memory_fraction)
  if not args.device:
    spec = dataclasses.replace(spec, name='custom')
  return spec


def plan_command(config: ml_collections.ConfigDict, rest: list[str]) -> int:
  """Runs `lm-jax plan`; returns the exit code."""
  args = parse_args(rest)
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')   # shapes only: never touch an accelerator
  from lm_jax.config.validate import resolve_mesh_shape, validate
  from lm_jax.plan import report, search
  from lm_jax.plan.candidate import plan_of_config
  from lm_jax.plan.shapes import model_facts, vocab_size_of
  from lm_jax.models.registry import all_families, get_family

  family = get_family(config.model.family)
  if not family.planner:
    raise ConfigError(
        f'lm-jax plan models the memory and step time of the families '
        f'{", ".join(f.name for f in all_families() if f.planner)}; config.model.family={family.name!r} is '
        'not modelled. Its FLOPs per token and parameter count are known (the train loop '
        'logs MFU); try meshes with `lm-jax train` and look at perf/compile_s and memory')
  spec = device_spec(args)
  vocab = vocab_size_of(config, args.vocab_size)
  name = config.logging.run_dir.rstrip('/').split('/')[-1]
  print(report.header(spec, args.devices, name, args.efficiency, args.overlap))
  if args.check:
    validate(config, device_count=args.devices)
    plan = plan_of_config(config, resolve_mesh_shape(config.mesh, args.devices))
    facts = model_facts(config, vocab, plan.stage)
    e = search.estimate(facts, plan, spec, args.efficiency, args.overlap)
    if not config.model.scan_layers:
      print('note: estimated with --config.model.scan_layers=true (with unrolled layers XLA '
            'decides what remat saves; see docs/planner.md)')
    if not e.fits:
      print(report.refusal(e, spec, 'the config\'s plan'))
      return 1
    print('fits.\n' + report.breakdown(e, spec))
    return 0
  best, smallest, tried = search.search(config, vocab, args.devices, spec, top=args.top,
                                        efficiency=args.efficiency, overlap=args.overlap)
  if not best:
    if smallest is None:
      print(f'no mesh of {args.devices} devices divides this model and batch '
            '(heads, kv heads, mlp, vocab by tensor; batch by data*fsdp; ...)')
    else:
      print(f'none of the {tried} candidate plans fits. The smallest:')
      print(report.refusal(smallest, spec, 'the smallest plan'))
    return 1
  print(f'{tried} candidate plans, {len(best)} best that fit:')
  print(report.table(best, spec))
  print('\nbest:\n' + report.breakdown(best[0], spec))
  print(report.launch_line(best[0], config))
  return 0
