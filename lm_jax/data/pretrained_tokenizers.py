"""Pretrained tokenizers from a local file: a Hugging Face tokenizer.json (GPT-2 BPE,
Llama, BERT WordPiece, ...) or a SentencePiece .model (T5, Llama 2). No hub access.

`data.tokenizer='pretrained'` with `data.tokenizer_path` naming the file (or a
directory holding tokenizer.json or tokenizer.model). Ids are the library's own
encoding of the text, without the special tokens a template would add
(add_special_tokens=False / SentencePiece's plain encode): documents get their
separator from lm_jax/data/boundaries.py. `own_special_ids()` maps the roles of
lm_jax/data/special_tokens.py to the tokenizer's own tokens ([CLS], [SEP],
[MASK], <pad>, </s>, <s>, <|endoftext|>, <extra_id_k>) where it has them.

The file is copied into the saved tokenizer directory (<run_dir>/tokenizer), so
a run keeps its tokenizer when the original moves. `token_byte_lengths` (bits
per byte) is exact for byte-level BPE and counts the UTF-8 bytes of each
piece's text otherwise (▁ as a space, ## continuation marks dropped, byte
fallback <0xNN> as one byte, special tokens as none).
"""

import hashlib
import json
import os
import re
import shutil

import numpy as np

from lm_jax.data import special_tokens

HF_NAME, SPM_NAME = 'tokenizer.json', 'tokenizer.model'
# Spellings of each role, most specific first.
_SPELLINGS = {
    'eos': ('</s>', '<|endoftext|>', '<|end_of_text|>', '<eos>', '[SEP]'),
    'bos': ('<s>', '<|begin_of_text|>', '<bos>', '<|endoftext|>', '[CLS]'),
    'pad': ('<pad>', '[PAD]', '<|pad|>'),
    'cls': ('[CLS]', '<cls>'),
    'sep': ('[SEP]', '<sep>'),
    'mask': ('[MASK]', '<mask>'),
    **{f'sentinel_{k}': (f'<extra_id_{k}>',) for k in range(special_tokens.NUM_SENTINELS)},
}
_BYTE_PIECE = re.compile(r'^<0x[0-9A-Fa-f]{2}>$')


def _file_sha(path: str) -> str:
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()[:16]


def resolve_path(path: str) -> str:
  """The tokenizer file `path` names (a directory: its tokenizer.json or tokenizer.model)."""
  if os.path.isdir(path):
    for name in (HF_NAME, SPM_NAME):
      if os.path.isfile(os.path.join(path, name)):
        return os.path.join(path, name)
    raise ValueError(f'data.tokenizer_path={path!r}: directory holds neither {HF_NAME} nor '
                     f'{SPM_NAME}')
  if not os.path.isfile(path):
    raise ValueError(f'data.tokenizer_path={path!r}: no such file; give a Hugging Face '
                     'tokenizer.json, a SentencePiece .model, or a directory holding one')
  return path


def _piece_bytes(piece: str) -> int:
  if _BYTE_PIECE.match(piece):
    return 1
  if piece.startswith('##'):
    piece = piece[2:]
  return len(piece.replace('\u2581', ' ').encode('utf-8'))


class HfFileTokenizer:
  """A Hugging Face `tokenizers` tokenizer.json."""

  kind = 'pretrained'

  def __init__(self, path: str):
    from tokenizers import Tokenizer as HfTokenizer  # pylint: disable=g-import-not-at-top
    self.path = path
    self.hf = HfTokenizer.from_file(path)
    self.vocab_size = self.hf.get_vocab_size(with_added_tokens=True)
    self._sha = _file_sha(path)

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(self.hf.encode(text, add_special_tokens=False).ids, dtype=np.int32)

  def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
    return [np.asarray(e.ids, dtype=np.int32)
            for e in self.hf.encode_batch_fast(texts, add_special_tokens=False)]

  def decode(self, ids) -> str:
    return self.hf.decode([int(i) for i in np.asarray(ids).reshape(-1)])

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    shutil.copyfile(self.path, os.path.join(directory, HF_NAME))
    _write_meta(directory, 'tokenizers', HF_NAME)

  def identity(self) -> str:
    return f'pretrained-hf-{self._sha}'

  def own_special_ids(self) -> dict[str, int]:
    vocab = self.hf.get_vocab(with_added_tokens=True)
    specials = {t.content for t in self.hf.get_added_tokens_decoder().values() if t.special}
    return _roles(lambda s: vocab.get(s) if s in specials else None)

  def token_byte_lengths(self) -> np.ndarray:
    byte_level = type(self.hf.decoder).__name__ == 'ByteLevel'
    specials = set(self.hf.get_added_tokens_decoder())
    lengths_V = np.zeros(self.vocab_size, dtype=np.int64)
    for token, i in self.hf.get_vocab(with_added_tokens=True).items():
      if i not in specials:
        lengths_V[i] = len(token) if byte_level else _piece_bytes(token)
    return lengths_V


class SentencePieceTokenizer:
  """A SentencePiece .model file."""

  kind = 'pretrained'

  def __init__(self, path: str):
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    self.path = path
    self.sp = spm.SentencePieceProcessor(model_file=path)
    self.vocab_size = self.sp.get_piece_size()
    self._sha = _file_sha(path)

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(self.sp.encode(text), dtype=np.int32)

  def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
    return [np.asarray(ids, dtype=np.int32) for ids in self.sp.encode(texts)]

  def decode(self, ids) -> str:
    return self.sp.decode([int(i) for i in np.asarray(ids).reshape(-1)])

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    shutil.copyfile(self.path, os.path.join(directory, SPM_NAME))
    _write_meta(directory, 'sentencepiece', SPM_NAME)

  def identity(self) -> str:
    return f'pretrained-spm-{self._sha}'

  def own_special_ids(self) -> dict[str, int]:
    sp = self.sp
    fixed = {'</s>': sp.eos_id(), '<s>': sp.bos_id(), '<pad>': sp.pad_id()}

    def lookup(spelling):
      if spelling in fixed:
        return fixed[spelling] if fixed[spelling] >= 0 else None
      i = sp.piece_to_id(spelling)
      return i if sp.id_to_piece(i) == spelling and not sp.is_unknown(i) else None
    return _roles(lookup)

  def token_byte_lengths(self) -> np.ndarray:
    sp = self.sp
    return np.array([0 if sp.is_control(i) or sp.is_unknown(i) else _piece_bytes(sp.id_to_piece(i))
                     for i in range(self.vocab_size)], dtype=np.int64)


def _roles(lookup) -> dict[str, int]:
  """{role: id} for the roles whose spelling `lookup` finds (first spelling wins)."""
  ids = {}
  for role, spellings in _SPELLINGS.items():
    for s in spellings:
      i = lookup(s)
      if i is not None:
        ids[role] = int(i)
        break
  return ids


def _write_meta(directory: str, library: str, name: str) -> None:
  from lm_jax.data.tokenizers import META_FILE  # pylint: disable=g-import-not-at-top
  with open(os.path.join(directory, META_FILE), 'w', encoding='utf-8') as f:
    json.dump({'kind': 'pretrained', 'library': library, 'file': name}, f)


def from_path(path: str):
  """The tokenizer of a tokenizer.json or SentencePiece .model (or a directory with one)."""
  path = resolve_path(path)
  if path.endswith('.json'):
    return HfFileTokenizer(path)
  try:
    return SentencePieceTokenizer(path)
  except (RuntimeError, OSError) as e:
    raise ValueError(f'data.tokenizer_path={path!r}: not a SentencePiece model ({e}); give a '
                     'tokenizer.json or a .model file') from e


def load(directory: str, meta: dict):
  """Reads back what `save(directory)` wrote."""
  path = os.path.join(directory, meta['file'])
  return HfFileTokenizer(path) if meta['library'] == 'tokenizers' else SentencePieceTokenizer(path)


def origin(path: str) -> dict:
  """What a pretrained tokenizer is made from: its file's content (run_tokenizer compares it)."""
  return {'kind': 'pretrained', 'file_sha256': _file_sha(resolve_path(path))}
