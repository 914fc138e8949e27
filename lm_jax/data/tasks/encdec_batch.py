"""The batch layout of encoder-decoder tasks (span_corruption, seq2seq).

  encoder_inputs  int32 [B, S]  padded with <pad>
  encoder_valid   int32 [B, S]  1 on real encoder tokens (the attention masks' padding part)
  decoder_inputs  int32 [B, T]  <pad> (T5's start token), then the targets shifted right
  targets         int32 [B, T]  ending with <eos>, padded with <pad>
  weights         float32 [B, T] 1 on real targets
"""

import numpy as np


def batch_spec(batch_size: int, seq_len: int, target_len: int) -> dict:
  """{key: (shape, dtype)} of an encoder-decoder batch."""
  enc, dec = (batch_size, seq_len), (batch_size, target_len)
  return {'encoder_inputs': (enc, np.int32), 'encoder_valid': (enc, np.int32),
          'decoder_inputs': (dec, np.int32), 'targets': (dec, np.int32),
          'weights': (dec, np.float32)}


def pad_pairs(inputs, targets, seq_len: int, target_len: int, pad_id: int) -> dict:
  """Pads per-row (encoder tokens, targets) lists into the encdec batch; the decoder reads
  the targets shifted right after a pad start token."""
  B = len(inputs)
  batch = {'encoder_inputs': np.full((B, seq_len), pad_id, np.int32),
           'encoder_valid': np.zeros((B, seq_len), np.int32),
           'decoder_inputs': np.full((B, target_len), pad_id, np.int32),
           'targets': np.full((B, target_len), pad_id, np.int32),
           'weights': np.zeros((B, target_len), np.float32)}
  for b, (enc, dec) in enumerate(zip(inputs, targets)):
    batch['encoder_inputs'][b, :len(enc)] = enc
    batch['encoder_valid'][b, :len(enc)] = 1
    batch['targets'][b, :len(dec)] = dec
    batch['weights'][b, :len(dec)] = 1.0
    batch['decoder_inputs'][b, 1:len(dec)] = dec[:-1]
  return batch
