"""Next-token language modelling: inputs = w[:-1], targets = w[1:] of each window.

With documents separated by special tokens (lm_jax/data/boundaries.py):
  data.document_mask       the batch also holds `positions` (restarting at every
                           document) and `segment_ids` (int32 [B, L]); the decoder
                           then attends only within a document (masks.causal_mask)
  data.drop_boundary_loss  targets in another document than their input (the first
                           token after a boundary, predicted from the previous
                           document) get weight 0
"""

import numpy as np

from lm_jax.data import boundaries
from lm_jax.data.tasks.registry import Task


def window_len(seq_len: int, data_cfg=None) -> int:
  """seq_len + 1 tokens: the inputs and, shifted by one, the targets."""
  del data_cfg
  return seq_len + 1


def _flag(data_cfg, key: str) -> bool:
  return bool(data_cfg is not None and data_cfg.get(key, False))


def batch_spec(batch_size: int, seq_len: int, data_cfg=None) -> dict:
  """inputs, targets: int32 [B, L]; weights: float32 [B, L]; with data.document_mask
  also positions, segment_ids: int32 [B, L]."""
  shape = (batch_size, seq_len)
  spec = {'inputs': (shape, np.int32), 'targets': (shape, np.int32),
          'weights': (shape, np.float32)}
  if _flag(data_cfg, 'document_mask'):
    spec.update(positions=(shape, np.int32), segment_ids=(shape, np.int32))
  return spec


def special_tokens(data_cfg) -> tuple[str, ...]:
  """The separator's tokens (eos / bos) when documents are separated by them."""
  return boundaries.separator_roles(data_cfg) if data_cfg is not None else ()


def make_batch(windows_BxW: np.ndarray, row_ids_B=None, ctx=None) -> dict:
  """Shifts each [L + 1] window into (inputs, targets); every target counts, except
  (data.drop_boundary_loss) those across a document boundary."""
  del row_ids_B
  windows_BxW = np.asarray(windows_BxW, dtype=np.int32)
  batch = {'inputs': np.ascontiguousarray(windows_BxW[:, :-1]),
           'targets': np.ascontiguousarray(windows_BxW[:, 1:]),
           'weights': np.ones((windows_BxW.shape[0], windows_BxW.shape[1] - 1), np.float32)}
  data_cfg = ctx.data_cfg if ctx is not None else None
  mask, drop = _flag(data_cfg, 'document_mask'), _flag(data_cfg, 'drop_boundary_loss')
  if mask or drop:
    segment_BxW, position_BxW = boundaries.segments(
        windows_BxW, ctx.specials.get('bos'), ctx.specials.get('eos'))
    if mask:
      batch['positions'] = np.ascontiguousarray(position_BxW[:, :-1])
      batch['segment_ids'] = np.ascontiguousarray(segment_BxW[:, :-1])
    if drop:
      batch['weights'][segment_BxW[:, 1:] != segment_BxW[:, :-1]] = 0.0
  return batch


TASK = Task(name='lm', description='next-token prediction on packed windows',
            window_len=window_len, batch_spec=batch_spec, make_batch=make_batch,
            special_tokens=special_tokens,
            config_keys=('document_mask', 'drop_boundary_loss'))
