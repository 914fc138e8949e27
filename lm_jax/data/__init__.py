"""Text -> tokens -> packed (inputs, targets) -> checkpointable grain iterator.

  sources.py       which files make a corpus, and reading them
  tokenizers.py    byte / char / bpe tokenizers with one interface
  fingerprint.py   content digests of the corpus; the data fingerprint checkpoints carry
  token_cache.py   tokenize once, memory-map afterwards
  run_tokenizer.py which tokenizer a run uses (<run_dir>/tokenizer: kept, or replaced if stale)
  pipeline.py      split (train / val / test), pack, shuffle, batch, the given rows of each batch: build_data()
  checkpointing.py Orbax args for the train iterator's position

Modules are imported explicitly (from lm_jax.data import pipeline) so that
using a tokenizer alone does not import grain.
"""
