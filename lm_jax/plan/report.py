"""Text the planner prints: the ranked table, one plan's breakdown, the refusal."""

from lm_jax.plan.interconnect import DeviceSpec, crosses_nodes
from lm_jax.plan.memory import fmt_bytes
from lm_jax.plan.search import Estimate

REMAT_SHORT = {'none': 'none', 'dots_saveable': 'dots', 'full': 'full',
               'dots_with_no_batch_dims_saveable': 'dots_nb'}


def header(spec: DeviceSpec, num_devices: int, config_name: str, efficiency: float,
           overlap: float) -> str:
  """What the estimates assume, in two lines."""
  nodes = -(-num_devices // spec.devices_per_node)
  return (f'plan for {config_name} on {num_devices} x {spec.name} ({nodes} node(s) of '
          f'{spec.devices_per_node}); usable memory {fmt_bytes(spec.usable_bytes)}/device\n'
          f'assumes {efficiency:.0%} of peak matmul FLOP/s, {overlap:.0%} of fsdp/data '
          f'collectives hidden, in-node {spec.intra_bytes_per_s / 1e9:g} GB/s, across nodes '
          f'{spec.inter_bytes_per_s / 1e9:g} GB/s per device')


def _comm_axes(e: Estimate, spec: DeviceSpec) -> str:
  """Axes with communication, '*' when the axis leaves a node."""
  mesh = e.plan.mesh_shape
  parts = []
  for axis, seconds in e.time.comm_s.items():
    if seconds > 0:
      axes = ('data', 'sequence') if axis == 'data' else axis
      star = '*' if crosses_nodes(mesh, axes, spec.devices_per_node) else ''
      parts.append(f'{axis[0]}{star}{seconds * 1e3:.1f}')
  return ' '.join(parts) or '-'


def table(estimates: list[Estimate], spec: DeviceSpec) -> str:
  """The ranked plans, one row each."""
  head = (f'{"#":>2} {"mesh (d s f q t)":<17} {"remat":<7} {"micro":>5} {"step ms":>9} '
          f'{"tokens/s":>10} {"MFU":>6} {"mem/dev":>10}  comm ms by axis (* = across nodes)')
  rows = [head]
  for i, e in enumerate(estimates, 1):
    p = e.plan
    mesh = f'{p.data} {p.stage} {p.fsdp} {p.sequence} {p.tensor}'
    micro = f'{p.microbatches}' + (f'/{p.pipeline_microbatches}' if p.stage > 1 else '')
    rows.append(f'{i:>2} {mesh:<17} {REMAT_SHORT[p.remat]:<7} {micro:>5} '
                f'{e.time.step_s * 1e3:>9.1f} {e.tokens_per_s:>10,.0f} {e.mfu:>6.1%} '
                f'{fmt_bytes(e.memory.total_bytes):>10}  {_comm_axes(e, spec)}')
  return '\n'.join(rows)


def breakdown(e: Estimate, spec: DeviceSpec) -> str:
  """Memory by component and time by part, for one plan."""
  lines = [f'plan {e.plan.label()} remat={e.plan.remat} microbatches={e.plan.microbatches}'
           + (f' pipeline_microbatches={e.plan.pipeline_microbatches}'
              if e.plan.stage > 1 else '')]
  for name, value in e.memory.components().items():
    lines.append(f'  {name:<12} {fmt_bytes(value):>11}')
  lines.append(f'  {"total":<12} {fmt_bytes(e.memory.total_bytes):>11}  (usable '
               f'{fmt_bytes(spec.usable_bytes)} of {fmt_bytes(spec.memory_bytes)})')
  t = e.time
  comm = ', '.join(f'{k} {v * 1e3:.2f} ms' for k, v in t.comm_s.items() if v > 0)
  lines.append(f'  step {t.step_s * 1e3:.1f} ms = compute {t.compute_s * 1e3:.1f} ms'
               f' + exposed comm {t.exposed_comm_s * 1e3:.1f} ms ({comm or "no collectives"})'
               + (f'; bubble {t.bubble_fraction:.0%}' if t.bubble_fraction else ''))
  lines.append(f'  {e.tokens_per_s:,.0f} tokens/s, MFU {e.mfu:.1%}')
  return '\n'.join(lines)


def refusal(e: Estimate, spec: DeviceSpec, what: str) -> str:
  """Why `e` (the given or the smallest plan) does not fit, with the numbers."""
  short = e.memory.total_bytes - spec.usable_bytes
  return (f'{what} does not fit: it needs {fmt_bytes(e.memory.total_bytes)} per device, '
          f'{fmt_bytes(short)} more than the {fmt_bytes(spec.usable_bytes)} usable '
          f'({spec.usable_fraction:.0%} of {fmt_bytes(spec.memory_bytes)}).\n'
          + breakdown(e, spec))


def launch_line(e: Estimate, config) -> str:
  """The overrides that launch the plan, and where they go."""
  flags = ' '.join(e.plan.overrides(config))
  return (f'overrides: {flags}\n'
          f'  lm-jax train --config <this config and its overrides> {flags}')
