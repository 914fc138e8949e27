"""A Hugging Face model directory's tokenizer.json, kept with an imported run and exported back.

lm_jax's `bpe` tokenizer is a Hugging Face `tokenizers` object saved as
tokenizer.json (lm_jax/data/tokenizers.py), so an HF tokenizer.json is stored
as <run_dir>/tokenizer in that form (data.tokenizer = 'bpe'); a run with a
checkpoint keeps the tokenizer its run directory holds (data/run_tokenizer.py).
"""

import os
import shutil

from lm_jax.data import tokenizers
from lm_jax.errors import ConfigError

TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json')


def hf_tokenizer(hf_dir: str):
  """The directory's tokenizer.json as an lm_jax BpeTokenizer, or None when it has none."""
  path = os.path.join(hf_dir, tokenizers.HF_FILE)
  if not os.path.isfile(path):
    return None
  from tokenizers import Tokenizer as HfTokenizer  # pylint: disable=g-import-not-at-top
  try:
    return tokenizers.BpeTokenizer(HfTokenizer.from_file(path))
  except Exception as e:  # the tokenizers library raises its own Exception types
    raise ConfigError(f'{path}: not a Hugging Face tokenizer file: {e}') from e


def check_vocab(tokenizer_vocab: int, model_vocab: int, where: str) -> None:
  """ConfigError when the tokenizer has ids past the model's embedding."""
  if tokenizer_vocab > model_vocab:
    raise ConfigError(
        f'{where} has {tokenizer_vocab} token ids, but the model\'s vocab_size is '
        f'{model_vocab}: ids from {model_vocab} up would index past the embedding. Use the '
        'tokenizer the model was trained with')


def save_with_run(tokenizer, hf_dir: str, run_dir: str) -> None:
  """<run_dir>/tokenizer in lm_jax's form (tokenizer.json + lm_jax_tokenizer.json), with
  the HF directory's tokenizer_config.json / special_tokens_map.json beside it for export."""
  directory = os.path.join(run_dir, 'tokenizer')
  tokenizer.save(directory)
  _copy(hf_dir, directory, TOKENIZER_FILES[1:])


def export_tokenizer(run_dir: str, out_dir: str) -> bool:
  """Copies the run's tokenizer files to `out_dir` when it has a Hugging Face one; whether it did."""
  directory = os.path.join(run_dir, 'tokenizer')
  if not os.path.isfile(os.path.join(directory, tokenizers.HF_FILE)):
    return False
  _copy(directory, out_dir, TOKENIZER_FILES)
  return True


def _copy(src: str, dst: str, names) -> None:
  for name in names:
    if os.path.isfile(os.path.join(src, name)):
      shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
