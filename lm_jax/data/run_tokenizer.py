"""Which tokenizer a run uses, and keeping <run_dir>/tokenizer true to it.

A run with a checkpoint (resuming, or being evaluated) keeps the tokenizer in
its run directory: its params were trained on those ids. Without a checkpoint
that copy is a leftover (of a run that died before its first save); it is
replaced when it was made from another corpus, kind or bpe_vocab_size than the
config now asks for (token_cache.tokenizer_origin, saved next to it).
"""

import os
from typing import Any, Callable

from absl import logging

from lm_jax.data import pretrained_tokenizers
from lm_jax.data import token_cache
from lm_jax.data import tokenizers

_KEEP = 'a resumed run must keep its tokenizer'


def _resumed_tokenizer(directory: str, wanted: dict, source: str,
                       allow_new_data: bool) -> tokenizers.Tokenizer:
  """Loads the run's own tokenizer; refuses one that the config would not make."""
  tokenizer = tokenizers.load_tokenizer(directory)
  if tokenizer.kind != wanted['kind']:
    raise ValueError(f'{directory} holds a {tokenizer.kind!r} tokenizer but '
                     f'data.tokenizer={wanted["kind"]!r}; {_KEEP}')
  saved = token_cache.read_origin(directory)
  if saved is None:  # saved before origins were recorded: nothing to compare
    return tokenizer
  if saved.get('bpe_vocab_size') != wanted.get('bpe_vocab_size'):
    raise ValueError(f'{directory} was trained with bpe_vocab_size={saved.get("bpe_vocab_size")} '
                     f'but data.bpe_vocab_size={wanted.get("bpe_vocab_size")}; {_KEEP}')
  if saved.get('file_sha256') != wanted.get('file_sha256'):
    logging.warning('data: data.tokenizer_path now holds another tokenizer than %s was '
                    'copied from; %s', directory, _KEEP)
  if saved.get('corpus') != wanted.get('corpus'):
    if not allow_new_data:
      raise ValueError(
          f'{directory} was trained on other text than data.source={source!r} holds now '
          f'(corpus {saved.get("corpus")}, now {wanted.get("corpus")}), and the checkpoint '
          'was trained on its ids. Restore the corpus or use another '
          '--config.logging.run_dir; or pass --config.checkpoint.allow_new_data=True to '
          'continue on the new text with this tokenizer (the data iterator restarts at '
          'batch 0)')
    logging.warning('data: the corpus changed; checkpoint.allow_new_data: keeping the '
                    'tokenizer in %s', directory)
  return tokenizer


def run_tokenizer(data_cfg: Any, run_dir: str, cache_dir: str, corpus_fp: dict,
                  read_text: Callable[[], str], *, resuming: bool, allow_new_data: bool,
                  is_primary: bool) -> tokenizers.Tokenizer:
  """Returns the run's tokenizer; saves it as <run_dir>/tokenizer (process 0 writes)."""
  directory = os.path.join(run_dir, 'tokenizer')
  pretrained = data_cfg.tokenizer == 'pretrained'
  if pretrained:
    wanted = pretrained_tokenizers.origin(data_cfg.tokenizer_path)
  else:
    wanted = token_cache.tokenizer_origin(data_cfg.tokenizer, data_cfg.bpe_vocab_size, corpus_fp)
  exists = os.path.exists(os.path.join(directory, tokenizers.META_FILE))
  if exists and resuming:
    return _resumed_tokenizer(directory, wanted, data_cfg.source, allow_new_data)
  if exists:
    saved = token_cache.read_origin(directory)
    if saved == wanted:
      return tokenizers.load_tokenizer(directory)
    logging.warning('data: %s was made from %s, not from the data the config names (%s), '
                    'and no checkpoint uses it: replacing it', directory,
                    saved or 'unrecorded data', wanted)
  if pretrained:
    tokenizer = pretrained_tokenizers.from_path(data_cfg.tokenizer_path)
  else:
    tokenizer = token_cache.cached_tokenizer(
        cache_dir, data_cfg.tokenizer, data_cfg.bpe_vocab_size, corpus_fp, read_text)
  if is_primary:
    if exists:
      token_cache.replace_tokenizer(tokenizer, directory, wanted)
    else:
      token_cache.save_tokenizer_atomic(tokenizer, directory, wanted)
  return tokenizer
