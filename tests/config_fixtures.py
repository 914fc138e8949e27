"""Shared by the tests/test_config_*.py files."""

import pathlib

from lm_jax.config import base_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (ROOT / 'configs').glob('*.py'))
# config file -> device counts its full variant is meant to validate on.
DEVICE_COUNTS = {
    'quickstart.py': (1, 2),
    'shakespeare_char.py': (1, 2, 4),
    'gpt2_small.py': (1, 2, 8),
    'llama_1b.py': (1, 2, 4, 8),
    'bert_base.py': (1, 2, 8),
    'bert_tiny.py': (1, 2),
    't5_small.py': (1, 2, 8),
    't5_tiny.py': (1, 2),
    'lstm_tiny.py': (1, 2),
    'gru_tiny.py': (1, 2),
    'rnn_tiny.py': (1, 2),
    'gated_cnn_tiny.py': (1, 2),
}


def locked_base():
  c = base_config()
  c.lock()
  return c


def config_file(tmp_path, body, name='cfg.py'):
  path = tmp_path / name
  path.write_text(body)
  return str(path)

