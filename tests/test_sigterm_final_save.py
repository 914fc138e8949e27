"""SIGTERM while the last (async) save is being written is caught by the loop's
handler: the run finishes and the checkpoint is whole (no default handler
killing the process half-way through the save)."""

import os
import signal

import jax

from lm_jax import launch
from lm_jax.checkpoint import Checkpointer
from lm_jax.config.loader import parse_cli_config
from lm_jax.train import loop
from lm_jax.run import build_run
from tests.run_helpers import QUICK, tiny_overrides

STEPS = 3


class _SignalDuringClose(Checkpointer):
  """Sends this process SIGTERM as the loop starts waiting for its last save."""
  closes = 0

  def close(self):
    type(self).closes += 1
    os.kill(os.getpid(), signal.SIGTERM)  # handled before the next bytecode
    super().close()


def test_sigterm_while_the_final_save_is_written(tmp_path, monkeypatch, caplog):
  config, _ = parse_cli_config(['--config', QUICK, *tiny_overrides(
      str(tmp_path / 'run'), STEPS, **{
          'train.global_batch_size': 8, 'train.eval_every': 0,
          'checkpoint.every': 0, 'checkpoint.async_save': True})])
  reached_outside = []
  # Stands in for the default handler (which would end this test process):
  # whatever the loop's own handler does not catch lands here.
  previous = signal.signal(signal.SIGTERM, lambda *_: reached_outside.append(1))
  monkeypatch.setattr(loop, 'Checkpointer', _SignalDuringClose)
  try:
    result = launch.train(config)
  finally:
    signal.signal(signal.SIGTERM, previous)

  assert _SignalDuringClose.closes == 1
  assert reached_outside == [], 'SIGTERM reached the handler outside the loop'
  assert 'SIGTERM received' in caplog.text
  assert result['step'] == STEPS and result['last_saved_step'] == STEPS
  run = build_run(config)
  ckpt = Checkpointer(config.logging.run_dir, config.checkpoint)
  assert ckpt.all_steps() == [STEPS]
  restored = ckpt.restore(run.built.abstract_state(), None)
  assert int(jax.device_get(restored.step)) == STEPS
  ckpt.close()
