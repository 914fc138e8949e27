"""`lm-jax plan`: memory estimate vs XLA, plan constraints, ranking, refusals, the CLI."""

import dataclasses
import os

import pytest

from lm_jax.config.defaults import base_config
from lm_jax.config.loader import apply_overrides, load_config
from lm_jax.config.validate import validate
from lm_jax.plan import command, search
from lm_jax.plan.candidate import Plan, apply_plan
from lm_jax.plan.cost import StepTime
from lm_jax.plan.interconnect import DEVICES, crosses_nodes
from lm_jax.plan.memory import MemoryEstimate
from lm_jax.plan.shapes import model_facts
from lm_jax.plan.xla_memory import estimate_vs_xla
from tests.run_helpers import QUICK, ROOT, run_cli

SMALL = ['model.d_model=128', 'model.num_heads=4', 'model.num_layers=2', 'model.max_len=128',
         'data.seq_len=128', 'train.global_batch_size=16', 'model.scan_layers=true',
         'model.attention=xla', 'mesh.data=-1']
LLAMA = ['model.num_kv_heads=2', 'model.position=rope', 'model.norm=rmsnorm',
         'model.mlp=swiglu', 'model.tie_embeddings=false']


def _config(*overrides):
  config = base_config()
  apply_overrides(config, ['--config.' + o for o in overrides])
  return config


@pytest.mark.parametrize('overrides', [
    SMALL + ['mesh.data=8', 'model.remat=none'],
    SMALL + ['mesh.data=2', 'mesh.tensor=4', 'model.remat=dots_with_no_batch_dims_saveable'],
    SMALL + LLAMA + ['mesh.data=4', 'mesh.tensor=2', 'model.remat=dots_saveable',
                     'train.microbatches=2'],
], ids=['gpt_data8_none', 'gpt_d2t4_dots_nb', 'llama_d4t2_dots_micro2'])
def test_memory_estimate_matches_xla_memory_analysis(overrides):
  result = estimate_vs_xla(_config(*overrides), 256)
  est, xla = result['estimate'], result['xla']
  # The state and batch are exact; the temporaries are a model (docs/planner.md).
  assert est['argument'] == pytest.approx(xla['argument'], rel=0.01)
  assert est['total'] == pytest.approx(xla['total'], rel=0.15), (est, xla)


def test_every_candidate_plan_validates():
  config = _config('model.num_heads=4', 'model.num_kv_heads=2', 'model.d_model=64',
                   'data.seq_len=64', 'model.max_len=64', 'train.global_batch_size=16')
  plans = list(search.candidate_plans(config, 256, 8))
  assert len(plans) > 50
  for plan in plans:
    validate(apply_plan(config, plan), device_count=8)
    assert plan.num_devices == 8
    assert config.data.seq_len % plan.sequence == 0
    assert plan.tensor <= 2   # 2 kv heads: tensor 4 and 8 cannot split them
  meshes = {(p.data, p.fsdp, p.tensor) for p in plans}
  assert (8, 1, 1) in meshes and (1, 8, 1) in meshes and (4, 1, 2) in meshes


def test_search_returns_only_valid_plans_that_fit():
  config = load_config(os.path.join(ROOT, 'configs', 'quickstart.py'))
  best, smallest, tried = search.search(config, 256, 8, DEVICES['h100'], top=5)
  assert 0 < len(best) <= 5 and tried >= len(best)
  for e in best:
    assert e.fits and e.memory.total_bytes <= DEVICES['h100'].usable_bytes
    validate(apply_plan(config, e.plan), device_count=8)
  assert [search.rank_key(e) for e in best] == sorted(search.rank_key(e) for e in best)
  assert smallest.memory.total_bytes <= min(e.memory.total_bytes for e in best)


def _estimate(plan, compute_s, comm_s, memory_bytes=1e9):
  time = StepTime(compute_s=compute_s, comm_s={'data': comm_s}, exposed_comm_s=0.0,
                  model_flops=1e12, device_flops=1e12, bubble_fraction=0.0)
  memory = MemoryEstimate(memory_bytes, 0, 0, 0, 0, 0, 0)
  return search.Estimate(plan, memory, time, 1.0, 0.5, True)


def test_ranking_prefers_less_communication_at_equal_flops():
  # Constructed: the same compute and step time, comm fully hidden; less comm wins.
  chatty = _estimate(Plan(data=8), compute_s=1.0, comm_s=0.3)
  quiet = _estimate(Plan(fsdp=8), compute_s=1.0, comm_s=0.1)
  assert sorted([chatty, quiet], key=search.rank_key)[0] is quiet
  # Real estimates: the same plan with its data axis inside one node or across
  # nodes has the same FLOPs; the one with slower collectives ranks lower.
  config = load_config(os.path.join(ROOT, 'configs', 'quickstart.py'))
  facts = model_facts(config, 256)
  plan = Plan(data=8, remat='full')
  one_node = search.estimate(facts, plan, DEVICES['h100'])
  spread = search.estimate(facts, plan, dataclasses.replace(DEVICES['h100'], devices_per_node=2))
  assert one_node.time.device_flops == spread.time.device_flops
  assert spread.time.total_comm_s > one_node.time.total_comm_s
  assert sorted([spread, one_node], key=search.rank_key)[0] is one_node


def test_axes_inner_first_decide_what_crosses_nodes():
  mesh = dict(data=8, stage=1, fsdp=1, sequence=1, tensor=8)
  assert not crosses_nodes(mesh, 'tensor', 8)
  assert crosses_nodes(mesh, 'data', 8)


def test_nothing_fits_refusal_has_the_numbers(capsys):
  config = load_config(os.path.join(ROOT, 'configs', 'quickstart.py'))
  code = command.plan_command(config, ['--devices', '8', '--device', 'h100',
                                       '--device-memory', '2MB'])
  out = capsys.readouterr().out
  assert code == 1
  assert 'none of the' in out and 'does not fit: it needs' in out
  assert 'more than the' in out and 'usable' in out and 'MiB' in out
  assert 'activations' in out and 'optimizer' in out


def test_check_refuses_a_forced_mesh_that_does_not_fit(capsys):
  config = load_config(os.path.join(ROOT, 'configs', 'quickstart.py'))
  apply_overrides(config, ['--config.mesh.data=8', '--config.model.remat=none'])
  code = command.plan_command(config, ['--devices', '8', '--device-memory', '8MB',
                                       '--device-flops', '1e12', '--check'])
  out = capsys.readouterr().out
  assert code == 1 and "the config's plan does not fit" in out and 'needs' in out
  code = command.plan_command(config, ['--devices', '8', '--device', 'h100', '--check'])
  assert code == 0 and 'fits.' in capsys.readouterr().out


def test_cli_plan_prints_the_overrides():
  done = run_cli('plan', '--config', QUICK, '--devices', '8', '--device', 'h100', '--top', '3')
  assert done.returncode == 0, done.stderr
  assert 'overrides: --config.mesh.data=' in done.stdout
  assert '--config.model.remat=' in done.stdout and '--config.train.microbatches=' in done.stdout
  bad = run_cli('plan', '--config', QUICK, '--devices', '8')
  assert bad.returncode == 2 and '--device' in bad.stderr
