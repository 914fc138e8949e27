"""experiments/profile_step.py: op kinds read off compiled HLO, and a traced run end to end."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments.profile_step import op_kinds  # noqa: E402


def test_op_kinds_names_the_dot_and_the_elementwise_fusion():
  def f(x_NxK, w_KxF):
    return jnp.tanh(x_NxK @ w_KxF) * 2.0 + 1.0

  hlo = jax.jit(f).lower(jnp.ones((64, 32)), jnp.ones((32, 16))).compile().as_text()
  kinds = set(op_kinds(hlo).values())
  assert kinds & {'ynn: dot', 'eigen dot'}, kinds  # the matmul, by whichever library
  assert any(k == 'loop fusion' or k.startswith('ynn: dot +') for k in kinds), kinds


@pytest.mark.slow
def test_profile_step_prints_the_breakdown():
  done = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'experiments', 'profile_step.py'),
       '--config', os.path.join(ROOT, 'configs', 'quickstart.py') + ':runlocal',
       '--config.mesh.data=1', '--steps', '2'],
      cwd=ROOT, capture_output=True, text=True, timeout=600,
      env={k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'})
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'lm_jax, 2 steps traced' in done.stdout and 'ms/step' in done.stdout, done.stdout
  assert 'dot' in done.stdout, done.stdout
