"""T5 span corruption: noise spans of each raw window become sentinels in the encoder
input and the decoder's targets (lm_jax/data/span_noise.py).

data.seq_len is the encoder length; the window is the most raw tokens whose
corrupted input fits it, and the decoder length follows (seq_len 512 -> 568
raw tokens, 114 targets, as in T5). The noise of row r is drawn from
(data.seed, r) alone, so resume and any process count give the same batches.
"""

import numpy as np

from lm_jax.data import span_noise
from lm_jax.data.special_tokens import NUM_SENTINELS, sentinel_roles
from lm_jax.data.tasks import encdec_batch
from lm_jax.data.tasks.registry import Task
from lm_jax.errors import ConfigError


def _args(data_cfg):
  return data_cfg.noise_density, data_cfg.mean_noise_span_length


def window_len(seq_len: int, data_cfg) -> int:
  """Raw tokens per row: the most whose corrupted encoder input fits seq_len."""
  return span_noise.raw_length(seq_len, *_args(data_cfg))


def target_len(seq_len: int, data_cfg) -> int:
  """Decoder length: the noise tokens, one sentinel per span and EOS."""
  return span_noise.corrupted_lengths(window_len(seq_len, data_cfg), *_args(data_cfg))[1]


def batch_spec(batch_size: int, seq_len: int, data_cfg) -> dict:
  """encoder_inputs / encoder_valid [B, seq_len]; decoder_inputs / targets / weights [B, T]."""
  return encdec_batch.batch_spec(batch_size, seq_len, target_len(seq_len, data_cfg))


def special_tokens(data_cfg) -> tuple[str, ...]:
  """EOS, padding (also the decoder's start token, as in T5) and T5's 100 sentinels."""
  num_spans = span_noise.span_counts(window_len(data_cfg.seq_len, data_cfg),
                                     *_args(data_cfg))[1]
  if num_spans > NUM_SENTINELS:
    raise ConfigError(
        f'config.data.seq_len={data_cfg.seq_len}: its windows get {num_spans} noise spans but '
        f'there are {NUM_SENTINELS} sentinels; lower seq_len or data.noise_density, or raise '
        'data.mean_noise_span_length')
  return ('eos', 'pad') + sentinel_roles(NUM_SENTINELS)


def row_rng(seed: int, row_id: int) -> np.random.Generator:
  """The noise of one global row: a function of (data.seed, row id) only."""
  return np.random.default_rng(np.random.SeedSequence([int(seed), int(row_id)]))


def make_batch(windows_BxW: np.ndarray, row_ids_B, ctx) -> dict:
  """Each window corrupted with its row's noise mask, padded to the spec's lengths."""
  cfg, specials = ctx.data_cfg, ctx.specials
  sentinels = [specials[role] for role in sentinel_roles(NUM_SENTINELS)]
  inputs, targets = [], []
  for window_W, row_id in zip(np.asarray(windows_BxW), row_ids_B):
    noise_W = span_noise.random_spans_noise_mask(len(window_W), *_args(cfg),
                                                 row_rng(ctx.seed, row_id))
    enc, dec = span_noise.corrupt(window_W, noise_W, sentinels, specials['eos'])
    inputs.append(enc)
    targets.append(dec)
  return encdec_batch.pad_pairs(inputs, targets, cfg.seq_len, target_len(cfg.seq_len, cfg),
                       specials['pad'])


TASK = Task(name='span_corruption',
            description='T5 span corruption: 15% noise in spans of mean 3, sentinels',
            window_len=window_len, batch_spec=batch_spec, make_batch=make_batch,
            special_tokens=special_tokens,
            config_keys=('noise_density', 'mean_noise_span_length'))
