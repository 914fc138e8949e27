"""Next-token language modelling: inputs = w[:-1], targets = w[1:] of each window."""

import numpy as np

from lm_jax.data.tasks.registry import Task


def window_len(seq_len: int, data_cfg=None) -> int:
  """seq_len + 1 tokens: the inputs and, shifted by one, the targets."""
  del data_cfg
  return seq_len + 1


def batch_spec(batch_size: int, seq_len: int, data_cfg=None) -> dict:
  """inputs, targets: int32 [B, L]; weights: float32 [B, L]."""
  del data_cfg
  shape = (batch_size, seq_len)
  return {'inputs': (shape, np.int32), 'targets': (shape, np.int32),
          'weights': (shape, np.float32)}


def make_batch(windows_BxW: np.ndarray, row_ids_B=None, ctx=None) -> dict:
  """Shifts each [L + 1] window into (inputs, targets); every target counts."""
  del row_ids_B, ctx
  windows_BxW = np.asarray(windows_BxW, dtype=np.int32)
  return {'inputs': np.ascontiguousarray(windows_BxW[:, :-1]),
          'targets': np.ascontiguousarray(windows_BxW[:, 1:]),
          'weights': np.ones((windows_BxW.shape[0], windows_BxW.shape[1] - 1), np.float32)}


TASK = Task(name='lm', description='next-token prediction on packed windows',
            window_len=window_len, batch_spec=batch_spec, make_batch=make_batch)
