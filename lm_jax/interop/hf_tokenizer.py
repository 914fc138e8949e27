"""A Hugging Face model directory's tokenizer, kept with an imported run and exported back.

The directory's tokenizer.json (or SentencePiece tokenizer.model) becomes the
run's `pretrained` tokenizer (lm_jax/data/pretrained_tokenizers.py): it is
saved as <run_dir>/tokenizer with its origin, and `data.tokenizer_path`
names that copy, so the run keeps its tokenizer wherever the HF directory goes.
"""

import os
import shutil

from lm_jax.data import pretrained_tokenizers, token_cache
from lm_jax.errors import ConfigError

# Copied along (import and export) so that transformers' AutoTokenizer finds its settings.
SIDE_FILES = ('tokenizer_config.json', 'special_tokens_map.json')
_FILES = (pretrained_tokenizers.HF_NAME, pretrained_tokenizers.SPM_NAME)


def tokenizer_file(hf_dir: str) -> str | None:
  """The directory's tokenizer.json or tokenizer.model, or None when it has neither."""
  for name in _FILES:
    if os.path.isfile(os.path.join(hf_dir, name)):
      return os.path.join(hf_dir, name)
  return None


def load(path: str):
  """The pretrained tokenizer of `path`; ConfigError naming the file when it does not load."""
  try:
    return pretrained_tokenizers.from_path(path)
  except Exception as e:  # the tokenizers / sentencepiece libraries raise their own types
    raise ConfigError(f'{path}: not a tokenizer lm_jax can load: {e}') from e


def run_copy(run_dir: str, source: str) -> str:
  """Where the run keeps its copy of `source` (what data.tokenizer_path names)."""
  return os.path.join(run_dir, 'tokenizer', os.path.basename(source))


def check_vocab(tokenizer_vocab: int, model_vocab: int, where: str) -> None:
  """ConfigError when the tokenizer (with the task's special ids) has ids past the embedding."""
  if tokenizer_vocab > model_vocab:
    raise ConfigError(
        f'{where} has {tokenizer_vocab} token ids (with the task\'s special tokens), but the '
        f'model\'s vocab_size is '
        f'{model_vocab}: ids from {model_vocab} up would index past the embedding. Use the '
        'tokenizer the model was trained with')


def save_with_run(tokenizer, source: str, run_dir: str) -> None:
  """<run_dir>/tokenizer as lm_jax saves a pretrained tokenizer (with its origin), plus
  the HF directory's tokenizer_config.json / special_tokens_map.json for export."""
  directory = os.path.join(run_dir, 'tokenizer')
  token_cache.save_tokenizer_atomic(tokenizer, directory, pretrained_tokenizers.origin(source))
  _copy(os.path.dirname(source), directory, SIDE_FILES)


def export_tokenizer(run_dir: str, out_dir: str) -> bool:
  """Copies the run's tokenizer files to `out_dir` if it has an HF one; whether it did."""
  directory = os.path.join(run_dir, 'tokenizer')
  if not any(os.path.isfile(os.path.join(directory, n)) for n in _FILES):
    return False
  _copy(directory, out_dir, _FILES + SIDE_FILES)
  return True


def _copy(src: str, dst: str, names) -> None:
  for name in names:
    if os.path.isfile(os.path.join(src, name)):
      shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
