"""Document boundaries in packed windows: which token separates documents, and from it
each token's segment id and its position within its document (NumPy, host side).

`data.separator` says what is put between documents when a corpus is tokenized:
  eos         an end-of-document token after every document (role 'eos')
  bos         a beginning-of-document token before every document (role 'bos')
  bos_eos     both
  blank_line  the text files joined by a blank line, no special token (nanoGPT's rule)
  auto        eos for JSONL / Parquet / HF datasets and mixtures, blank_line for text files
A tokenizer with its own BOS/EOS (a pretrained one) gives their ids; otherwise
they are appended after the text vocabulary (lm_jax/data/special_tokens.py).

A document starts after an eos and at a bos. Segment ids count the documents
that started up to a token, so they change exactly at a boundary.
"""

import numpy as np

SEPARATORS = ('auto', 'eos', 'bos', 'bos_eos', 'blank_line')
_ROLES = {'eos': ('eos',), 'bos': ('bos',), 'bos_eos': ('bos', 'eos'), 'blank_line': ()}


def resolve_separator(data_cfg) -> str:
  """data.separator with 'auto' decided by the source's format."""
  sep = data_cfg.get('separator', 'auto') if data_cfg is not None else 'blank_line'
  if sep != 'auto':
    return sep
  if data_cfg.get('mixture'):  # sources are documents of their own
    return 'eos'
  from lm_jax.data import documents  # pylint: disable=g-import-not-at-top
  fmt = documents.source_format(data_cfg.source, data_cfg.file_glob,
                                data_cfg.get('format', 'auto'))
  return 'blank_line' if fmt == 'text' else 'eos'


def separator_roles(data_cfg) -> tuple[str, ...]:
  """The special-token roles the separator puts into the token stream."""
  return _ROLES[resolve_separator(data_cfg)]


def segments(windows_BxW: np.ndarray, bos_id: int | None = None,
             eos_id: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(segment ids, positions), int32 [B, W]: the document of each token (counted from 0
  in its window) and its index within that document's part of the window."""
  windows_BxW = np.asarray(windows_BxW)
  starts_BxW = np.zeros(windows_BxW.shape, bool)
  if eos_id is not None:  # the token after an eos starts a document
    starts_BxW[:, 1:] |= windows_BxW[:, :-1] == eos_id
  if bos_id is not None:
    starts_BxW[:, 1:] |= windows_BxW[:, 1:] == bos_id
  segment_BxW = np.cumsum(starts_BxW, axis=1, dtype=np.int32)
  idx_BxW = np.broadcast_to(np.arange(windows_BxW.shape[1], dtype=np.int32), windows_BxW.shape)
  # The index of each token's document start: a running max of start indices.
  start_idx_BxW = np.maximum.accumulate(np.where(starts_BxW, idx_BxW, 0), axis=1)
  return segment_BxW, (idx_BxW - start_idx_BxW).astype(np.int32)
