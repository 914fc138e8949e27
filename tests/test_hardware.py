"""The peak FLOP/s table against the vendors' spec sheets (numbers copied from
the sheets here, dense, per JAX device), and an accelerator missing from the
table: training goes on, warns once and logs no MFU."""

import logging
import os

import jax
import pytest

from lm_jax import launch
from lm_jax.config.loader import apply_overrides, load_config
from lm_jax.metrics import hardware
from lm_jax.metrics.writers import read_jsonl
from lm_jax.train import loop
from tests.run_helpers import QUICK, tiny_overrides


class FakeDevice:
  """What the peak lookup reads of a jax.Device."""

  def __init__(self, device_kind: str, platform: str = 'gpu'):
    self.device_kind, self.platform = device_kind, platform


# (device_kind, dtype, FLOP/s): the spec sheet's dense figure (half the sparse
# one where only that is printed), TF32 for float32 on NVIDIA Ampere and later.
DATASHEETS = [
    ('NVIDIA H100 80GB HBM3', 'bfloat16', 989.4e12),  # H100 SXM: 1,979 sparse
    ('NVIDIA L4', 'bfloat16', 121e12),                # L4: 242 sparse
    ('NVIDIA L4', 'float32', 60e12),                  # L4: TF32 120 sparse
    ('Tesla T4', 'float32', 8.1e12),                  # T4: FP32 8.1, no TF32
    ('Tesla T4', 'bfloat16', 8.1e12),                 # no bf16 tensor cores
    ('NVIDIA A10', 'bfloat16', 125e12),               # A10: 250 sparse
    ('NVIDIA A10', 'float32', 62.5e12),               # A10: TF32 125 sparse
    ('NVIDIA A10G', 'bfloat16', 70e12),               # AWS G5 figures
    ('NVIDIA L40S', 'bfloat16', 362.05e12),           # L40S: 733 sparse
    ('NVIDIA L40S', 'float32', 183e12),               # L40S: TF32 366 sparse
    ('NVIDIA L40', 'bfloat16', 181.05e12),            # L40: 362.1 sparse
    ('NVIDIA RTX A6000', 'bfloat16', 154.8e12),       # GA102 whitepaper
    ('NVIDIA GeForce RTX 4090', 'bfloat16', 165.2e12),  # AD102 whitepaper
    ('NVIDIA GeForce RTX 4090', 'float32', 82.6e12),
    ('NVIDIA B200', 'bfloat16', 2.25e15),             # HGX B200: 36 PF / 8, sparse
    ('NVIDIA B200', 'float32', 1.125e15),             # HGX B200: TF32 18 PF / 8
    ('NVIDIA B100', 'bfloat16', 1.75e15),             # HGX B100: 28 PF / 8, sparse
    ('NVIDIA GB200', 'bfloat16', 2.5e15),             # GB200 NVL72: 360 PF / 72
    ('TPU v2', 'bfloat16', 22.5e12),                  # 45 per chip, 2 cores
    ('TPU v3', 'bfloat16', 61.5e12),                  # 123 per chip, 2 cores
    ('TPU v4', 'bfloat16', 275e12),
    ('TPU v5 lite', 'bfloat16', 197e12),              # v5e
    ('TPU v5p', 'bfloat16', 459e12),
    ('TPU v6 lite', 'bfloat16', 918e12),              # v6e
]


@pytest.mark.parametrize('kind, dtype, flops', DATASHEETS)
def test_known_devices_resolve_to_their_datasheet_peak(kind, dtype, flops):
  platform = 'tpu' if kind.startswith('TPU') else 'gpu'
  got = hardware.peak_flops_per_device(FakeDevice(kind, platform), dtype)
  assert got == pytest.approx(flops, rel=1e-9)


@pytest.mark.parametrize('kind, table_key', [
    ('NVIDIA GH200 480GB', 'NVIDIA H200'),     # Hopper compute
    ('NVIDIA A10G-MIG', 'NVIDIA A10G'),        # not the A10
    ('NVIDIA A100-SXM4-64GB', 'NVIDIA A100-SXM4-80GB'),  # not the A10
    ('NVIDIA L40S-48Q', 'NVIDIA L40S'),        # not the L40 or L4
    ('NVIDIA GB200 NVL', 'NVIDIA GB200'),      # not the B200
])
def test_variants_fall_back_to_the_right_family(kind, table_key):
  assert hardware.lookup_peak_flops(kind) == hardware.PEAK_FLOPS[table_key]['bfloat16']


@pytest.mark.parametrize('kind', ['NVIDIA RTX A1000', 'Quantum Abacus', 'TPU v9'])
def test_unknown_accelerators_have_no_peak(kind):
  assert hardware.peak_flops_per_device(FakeDevice(kind), 'bfloat16') is None
  assert hardware.peak_flops_per_device(FakeDevice(kind), 'bfloat16',
                                        override=5e13) == 5e13


class _JaxOnAnUnknownAccelerator:
  """jax as the loop sees it, but jax.devices() is a GPU the table lacks."""

  def __getattr__(self, name):
    return getattr(jax, name)

  def devices(self, *args):
    return [FakeDevice('NVIDIA L5')]


def test_training_on_an_unknown_accelerator_warns_once_and_logs_no_mfu(
    tmp_path, monkeypatch, caplog):
  """The loop's own path, with the device it looks up replaced by a fake one
  (the run itself is on the 8 CPU devices)."""
  monkeypatch.setattr(loop, 'jax', _JaxOnAnUnknownAccelerator())
  run_dir = str(tmp_path / 'run')
  config = load_config(QUICK)
  apply_overrides(config, tiny_overrides(run_dir, 3) + [
      '--config.train.global_batch_size=8', '--config.train.log_every=1',
      '--config.train.eval_every=0', '--config.logging.tensorboard=False'])
  caplog.set_level(logging.WARNING)
  result = launch.train(config)
  assert result['step'] == 3
  assert 'train/tokens_per_s' in result and 'train/mfu' not in result
  records = [r for r in read_jsonl(os.path.join(run_dir, 'metrics.jsonl'))
             if 'train/loss' in r]
  assert len(records) == 3 and not any('train/mfu' in r for r in records)
  warnings = [r for r in caplog.records if 'NVIDIA L5' in r.getMessage()]
  assert len(warnings) == 1 and 'MFU is not logged' in warnings[0].getMessage()
