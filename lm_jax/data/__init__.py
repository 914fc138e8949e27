"""Text -> tokens -> packed (inputs, targets) -> checkpointable grain iterator.

  sources.py       which files make a corpus, and reading them
  tokenizers.py    byte / char / bpe tokenizers with one interface
  fingerprint.py   content digests of the corpus; the data fingerprint checkpoints carry
  token_cache.py   tokenize once, memory-map afterwards
  run_tokenizer.py which tokenizer a run uses (<run_dir>/tokenizer: kept, or replaced if stale)
  pipeline.py      split (train / val / test), pack, shuffle, batch, the given rows of each batch: build_data()
  checkpointing.py Orbax args for the train iterator's position
  documents.py     JSONL / Parquet / HF dataset / text documents, read by chunks (docs/data.md)
  boundaries.py    separators between documents; segment ids and positions of packed windows
  pretrained_tokenizers.py  tokenizer.json / SentencePiece .model from a local path
  prepare.py       documents -> sharded token files + index (process pool, resumable)
  prepared_corpus.py  a run's corpus through preparation (one source or a mixture)
  token_stream.py  the shards as one lazily memory-mapped token array
  mixture.py       several sources sampled by weight, per row, from (seed, batch index)

Modules are imported explicitly (from lm_jax.data import pipeline) so that
using a tokenizer alone does not import grain.
"""
