"""The base config schema: every section with its defaults.

Config files in configs/ call `base_config()` and change only what differs.
Every key that exists here can be overridden on the command line as
`--config.section.key=value`; a key that does not exist here is an error.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Returns the full default config (a small byte-level GPT on the stdlib)."""
  c = ml_collections.ConfigDict()

  c.model = ml_collections.ConfigDict(dict(
      family='decoder',        # a family of lm_jax/models/registry.py: decoder (GPT/Llama) | encoder (BERT) | encdec (T5)
      vocab_size=0,            # 0: taken from the tokenizer (else at least its vocabulary)
      vocab_multiple=64,       # the embedding is padded up to a multiple of this
      num_layers=4,
      d_model=128,
      num_heads=4,
      num_kv_heads=0,          # 0: = num_heads (MHA); < num_heads: GQA
      head_dim=0,              # 0: d_model // num_heads
      mlp_dim=0,               # 0: 4 * d_model (gelu) or 8/3 * d_model rounded (swiglu)
      max_len=256,             # positions the model supports
      position='learned',      # learned | rope
      rope_theta=10000.0,
      norm='layernorm',        # layernorm | rmsnorm
      norm_eps=1e-5,
      mlp='gelu',              # gelu | swiglu
      use_bias=False,
      tie_embeddings=True,
      dropout=0.0,
      param_dtype='float32',   # float32 | bfloat16
      dtype='float32',         # compute dtype: float32 | bfloat16
      attention='auto',        # auto | xla | cudnn | blockwise (lm_jax/models/attention.py)
      scan_layers=False,       # nn.scan over layers (faster compile for deep models)
      remat='none',            # none | full | dots_saveable | dots_with_no_batch_dims_saveable
      init_std=0.02,
  ))

  c.data = ml_collections.ConfigDict(dict(
      source='stdlib',         # stdlib (this Python's own library sources) | a file, glob or directory
      file_glob='*.py',        # files taken from a directory source
      max_bytes=8_000_000,     # read at most this many bytes of text (0: no limit)
      task='',                 # batch maker (lm_jax/data/tasks): '' = the family's default; lm | mlm | span_corruption | seq2seq
      tokenizer='byte',        # byte | char | bpe
      bpe_vocab_size=4096,
      seq_len=128,
      val_fraction=0.1,        # validation: this fraction of the token stream, after train
      test_fraction=0.05,      # test: the tail, after validation; never read in training
      seed=0,
      cache_dir='',            # '': <run_dir>/../.cache/tokens; tokenized corpora are memory-mapped from here
      prefetch=2,              # batches prefetched by a background thread (0: off)
      mlm_probability=0.15,    # mlm task: fraction of text tokens selected (80% [MASK], 10% random, 10% kept)
      nsp=False,               # mlm task: sentence pairs with next-sentence labels (50% true continuation)
      # Encoder-decoder tasks (docs/families_encdec.md): span_corruption's noise, seq2seq's pairs.
      noise_density=0.15,      # span_corruption: share of each window's tokens that are noise
      mean_noise_span_length=3.0,  # span_corruption: mean length of a noise span
      seq2seq_path='',         # seq2seq: JSONL file of {input_field: str, target_field: str} lines
      seq2seq_input_field='input',
      seq2seq_target_field='target',
      target_len=0,            # seq2seq: decoder length (0: data.seq_len); span_corruption derives it
      # Documents at scale (docs/data.md): sources, separators, masks, preparation.
      format='auto',           # auto (by file name) | text | jsonl (.gz, .zst) | parquet | hf (save_to_disk dir)
      text_field='text',       # the JSONL field / Parquet or HF column holding a document's text
      utf8_errors='replace',   # invalid UTF-8 in a document: replace (U+FFFD) | skip (the document) | error
      separator='auto',        # between documents: auto | eos | bos | bos_eos | blank_line (lm_jax/data/boundaries.py)
      document_mask=False,     # lm batches carry positions/segment_ids: attention stays within a document
      drop_boundary_loss=False,  # weight 0 on targets across a document boundary
      tokenizer_path='',       # data.tokenizer=pretrained: a tokenizer.json (or its dir) or a SentencePiece .model
      split_by='tail',         # tail (token fractions, nanoGPT) | document (whole documents by a content hash)
      prepare_workers=1,       # processes tokenizing chunks in `lm-jax prepare` / before training
      chunk_mb=64,             # input megabytes per chunk (one token shard each)
      mixture='',              # 'SRC:W,SRC:W,...': sources sampled by weight per row (replaces data.source)
  ))

  c.optimizer = ml_collections.ConfigDict(dict(
      name='adamw',
      lr=1e-3,
      # nanoGPT's get_lr, t = 0-based update: lr * (t + 1) / (warmup_steps + 1)
      # for t < warmup_steps (so the first update is not lr 0), then from lr to
      # lr * min_lr_ratio at decay_steps (cosine or linear; constant stays at lr).
      schedule='cosine',       # cosine | linear | constant
      warmup_steps=100,
      min_lr_ratio=0.1,        # final lr = lr * min_lr_ratio (cosine, linear)
      decay_steps=0,           # update where the decay ends (0: train.steps)
      b1=0.9,
      b2=0.95,
      eps=1e-8,
      # Decoupled (AdamW) decay of kernels and embeddings; never of biases or
      # norm scales/biases, whatever their rank (optimizer.py DECAYED_LEAVES).
      weight_decay=0.1,
      # Penalties added to the mean token loss, on the same params as weight
      # decay: + l1 * sum|w| + l2 / 2 * sum w^2 (logged as train/penalty).
      l1=0.0,
      l2=0.0,
      grad_clip=1.0,           # global-norm clip (0: off)
  ))

  c.train = ml_collections.ConfigDict(dict(
      steps=1000,
      global_batch_size=16,
      microbatches=1,          # gradient accumulation: global batch split in this many pieces
      seed=0,
      eval_every=200,
      eval_batches=8,
      log_every=10,
      early_stop_metric='loss',   # eval metric for early stopping and the best checkpoint: loss | perplexity | bits_per_byte (lower is better)
      early_stop_patience=0,      # stop after this many evaluations in a row without improvement (0: never)
      early_stop_min_delta=0.0,   # an improvement must lower the metric by more than this
  ))

  c.objective = ml_collections.ConfigDict(dict(
      name='cross_entropy',    # lm_jax/objectives/registry.py: cross_entropy | mlm (+ NSP) | distill (docs/objectives.md)
      label_smoothing=0.0,     # eps: target (1 - eps) onehot + eps / V; trained as KL to it
      z_loss=0.0,              # coefficient of the log(Z)^2 auxiliary loss (PaLM)
      # distill: kl_weight * T^2 KL(teacher_T || student_T) + (1 - kl_weight) * hard loss
      temperature=1.0,         # distill: T, softens teacher and student logits
      kl_weight=0.5,           # distill: weight of the soft (KL) term, in [0, 1]
      teacher_run='',          # distill: run directory of the teacher (same vocabulary)
      teacher_step=0,          # distill: the teacher's checkpoint step (0: its newest)
  ))

  c.mesh = ml_collections.ConfigDict(dict(
      data=-1,                 # -1: all devices not used by the other axes
      stage=1,                 # pipeline stages (layers split into `stage` groups)
      fsdp=1,
      sequence=1,              # sequence parallelism: activations split along length
      tensor=1,
      rules='auto',            # auto | dp | fsdp | tp | fsdp_tp (sequence/stage add their rules)
      pipeline_microbatches=4,  # GPipe microbatches per step when stage > 1
  ))

  c.distributed = ml_collections.ConfigDict(dict(
      # Multi-process runs (jax.distributed). On TPU pods and SLURM the
      # coordinator is detected; elsewhere give it explicitly.
      coordinator_address='',  # host:port of process 0 ('' : auto-detect or single process)
      num_processes=0,         # 0: auto
      process_id=-1,           # -1: auto
      local_device_count=0,    # CPU only: simulated devices per process (0: default)
      initialization_timeout=300,  # seconds to wait for every process to join
  ))

  c.checkpoint = ml_collections.ConfigDict(dict(
      every=500,               # save every N steps (0: only at the end)
      keep=3,                  # keep the last N checkpoints
      keep_best=True,          # also keep the best evaluation's checkpoint (saved when an eval finds a new best)
      async_save=True,
      # Resume on data other than the checkpoint's (corpus content, split, seq_len, batch,
      # seed, max_bytes): keeps params, optimizer state and step; the data iterator
      # restarts at batch 0. Off: such a resume is refused with the differences.
      allow_new_data=False,
  ))

  c.logging = ml_collections.ConfigDict(dict(
      run_dir='runs/default',
      tensorboard=True,
      progress=True,           # progress bar on stderr
      peak_flops_per_device=0.0,  # 0: look up the device in the peak table
      wandb_project='',        # Weights & Biases project ('': off); needs pip install -e '.[wandb]'
      wandb_mode='online',     # online | offline (files only; `wandb sync` later) | disabled
      profile_steps=(),        # (start, stop): jax.profiler trace of steps start..stop into tensorboard/; (): off
  ))
  c.sample = ml_collections.ConfigDict(dict(
      # lm-jax generate / chat / harness (lm_jax/generate/sampling.py)
      temperature=1.0,         # 0: greedy
      top_k=0,                 # 0: off
      top_p=1.0,               # 1: off (nucleus sampling below 1)
      min_p=0.0,               # 0: off
      repetition_penalty=1.0,  # 1: off
      max_new_tokens=128,
      seed=0,
      stop=(),                 # stop strings, e.g. --config.sample.stop="('\\n\\n',)"
      num_beams=1,             # lm-jax generate: 1 = off (sample as above); > 1: beam search
      length_penalty=1.0,      # beam search: a finished beam scores sum log p / length ** this
  ))
  _add_family_sections(c.model)
  return c


def _add_family_sections(model: ml_collections.ConfigDict) -> None:
  """config.model.<family> subsections: each family declares its own keys."""
  from lm_jax.models.registry import all_families  # pylint: disable=g-import-not-at-top
  for family in all_families():
    if family.own_defaults:
      model[family.name] = ml_collections.ConfigDict(dict(family.own_defaults))


def shrink_to_runlocal(c: ml_collections.ConfigDict, name: str) -> None:
  """Shrinks a config in place to a seconds-long CPU smoke run (`config.py:runlocal`).

  Keeps the config's model family, position, norm and MLP choices; only sizes,
  step counts and the run directory change (of the model sizes, those the family reads).
  """
  from lm_jax.models.registry import get_family  # pylint: disable=g-import-not-at-top
  c.data.max_bytes = 200_000
  c.data.seq_len = 32
  reads = get_family(c.model.family).shared_keys
  c.model.update({k: v for k, v in dict(num_layers=2, d_model=32, num_heads=2, max_len=32).items()
                  if k in reads})
  c.train.update(global_batch_size=4, microbatches=1, steps=5, eval_every=5,
                 eval_batches=1, log_every=1)
  c.optimizer.warmup_steps = 1
  c.checkpoint.every = 5
  c.logging.run_dir = f'runs/{name}_runlocal'
