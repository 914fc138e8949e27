"""The test split: the tail of the token stream after validation, never read by training,
evaluated by `eval --split test` to the loss of a NumPy forward pass on its windows."""

import os

import numpy as np
import orbax.checkpoint as ocp
import pytest

from lm_jax import launch
from lm_jax.config import ConfigError, apply_overrides, base_config, load_config
from lm_jax.data import pipeline
from lm_jax.data import token_cache
from lm_jax.evaluate import evaluate_checkpoint
from lm_jax.models import build_model
from lm_jax.train import loop
from tests.numpy_reference import np_decoder
from tests.run_helpers import QUICK

T = 20_000  # tokens in the stream
L = 8       # seq_len
W = L + 1


def test_train_val_and_test_read_disjoint_token_ranges(tmp_path, monkeypatch):
  # Token i of the stream is the number i, so every batch says which positions it read.
  monkeypatch.setattr(token_cache, 'cached_tokens',
                      lambda *_: np.arange(T, dtype=np.uint32))
  (tmp_path / 'c.txt').write_text('x')
  cfg = base_config().data
  cfg.update(source=str(tmp_path / 'c.txt'), seq_len=L, val_fraction=0.1, test_fraction=0.05,
             prefetch=0)
  data = pipeline.build_data(cfg, global_batch_size=4, run_dir=str(tmp_path / 'run'))
  train_end, val_end = 17_000, 19_000  # int(T * 0.85), int(T * 0.95)
  assert (data.train_tokens, data.val_tokens, data.test_tokens) == (17_000, 2_000, 1_000)

  def positions(batches):
    return {int(p) for b in batches for k in ('inputs', 'targets') for p in b[k].ravel()}

  epoch = train_end // W // 4
  trained = positions(next(data.train_iter) for _ in range(2 * epoch))
  validated = positions(data.val_batches(10_000))
  tested = positions(data.test_batches(10_000))
  assert trained == set(range(epoch * 4 * W))  # every train window, nothing past train_end
  assert validated == set(range(train_end, train_end + 2_000 // W // 4 * 4 * W))
  assert tested == set(range(val_end, val_end + 1_000 // W // 4 * 4 * W))


def _config(tmp_path, **extra):
  rng = np.random.default_rng(0)
  corpus = tmp_path / 'corpus.txt'
  if not corpus.exists():
    corpus.write_text(''.join(rng.choice(list('abcdefgh ij\n'), size=40_000)))
  c = load_config(QUICK)
  flags = {'data.source': str(corpus), 'data.max_bytes': 0, 'train.global_batch_size': 8,
           'train.steps': 4, 'train.eval_every': 2, 'train.eval_batches': 2,
           'checkpoint.every': 4, 'checkpoint.async_save': False,
           'logging.run_dir': str(tmp_path / 'run'), 'logging.progress': False,
           'logging.tensorboard': False, 'data.cache_dir': str(tmp_path / 'cache'), **extra}
  apply_overrides(c, [f'--config.{k}={v}' for k, v in flags.items()])
  return c


@pytest.mark.slow  # ~30 s quiet; tests/test_cli.py runs eval --split test by default
def test_training_never_reads_test_tokens_and_eval_split_test_matches_numpy(
    tmp_path, monkeypatch):
  # Record every token range a Windows object hands out, as positions in the whole stream.
  streams, ranges = [], []
  real_cached, real_get = token_cache.cached_tokens, pipeline.Windows.__getitem__

  def cached(*args):
    streams.append(real_cached(*args))
    return streams[-1]

  def get(self, index):
    base = streams[-1]
    offset = (self.tokens_T.__array_interface__['data'][0]
              - base.__array_interface__['data'][0]) // base.itemsize
    ranges.append((offset + index * self.window, offset + (index + 1) * self.window))
    return real_get(self, index)

  monkeypatch.setattr(token_cache, 'cached_tokens', cached)
  monkeypatch.setattr(pipeline.Windows, '__getitem__', get)
  config = _config(tmp_path)
  launch.train(config)
  tokens_T = np.asarray(streams[-1])
  val_end = int(len(tokens_T) * 0.95)
  assert ranges and max(end for _, end in ranges) <= val_end  # train and validation only

  ranges.clear()
  result = evaluate_checkpoint(config, split='test')
  assert result['split'] == 'test' and result['step'] == 4
  assert ranges and min(start for start, _ in ranges) >= val_end

  # Reference: the first 2 batches of 8 test windows, through a float64 NumPy forward pass.
  windows_NxW = tokens_T[val_end:val_end + 16 * 33].reshape(16, 33).astype(np.int64)
  state = ocp.StandardCheckpointer().restore(
      os.path.join(config.logging.run_dir, 'checkpoints', '4', 'state'))
  _, model_cfg = build_model(config.model, 256, config.mesh)
  logits = np_decoder(state['params'], model_cfg, windows_NxW[:, :-1])
  m = logits.max(-1, keepdims=True)
  log_z = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
  target = np.take_along_axis(logits, windows_NxW[:, 1:, None], -1)[..., 0]
  assert result['loss'] == pytest.approx(float(np.mean(log_z - target)), rel=1e-5)


def test_eval_of_a_missing_split_is_a_config_error(tmp_path):
  with pytest.raises(ConfigError, match='config.data.test_fraction=0'):
    evaluate_checkpoint(_config(tmp_path, **{'data.test_fraction': 0.0}), split='test')
  with pytest.raises(ConfigError, match='expected one of val, test'):
    evaluate_checkpoint(_config(tmp_path), split='train')
