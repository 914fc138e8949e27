"""Mixtures: sampled proportions match the weights, batches are a function of (seed, index)
(resume, any process count), held-out splits cover every source, bad specs are refused."""

import json

import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data import mixture, pipeline
from lm_jax.errors import ConfigError

B = 16


def _source(path, letter, n=300):
  with open(path, 'w', encoding='utf-8') as f:
    for i in range(n):
      f.write(json.dumps({'text': letter * (5 + i % 20) + f' {i}'}) + '\n')
  return str(path)


def _data(tmp_path, weights='0.7,0.3', rows=None, seed=0):
  a, b = _source(tmp_path / 'a.jsonl', 'a'), _source(tmp_path / 'b.jsonl', 'b')
  w_a, w_b = weights.split(',')
  c = base_config().data
  c.update(mixture=f'{a}:{w_a},{b}:{w_b}', seq_len=8, cache_dir=str(tmp_path / 'cache'),
           prefetch=0, seed=seed, split_by='document')
  return pipeline.build_data(c, global_batch_size=B, run_dir=str(tmp_path / 'run'), rows=rows)


def _source_of_rows(batch):
  """'a' or 'b' for each row (each source's documents hold one letter only)."""
  inputs = batch['inputs']
  has_a, has_b = (inputs == ord('a')).any(1), (inputs == ord('b')).any(1)
  return np.where(has_a & ~has_b, 'a', np.where(has_b & ~has_a, 'b', '?'))


def test_sampled_proportions_follow_the_weights(tmp_path):
  data = _data(tmp_path)
  rows = np.concatenate([_source_of_rows(next(data.train_iter)) for _ in range(150)])
  assert (rows != '?').all()  # windows never mix sources
  assert abs((rows == 'a').mean() - 0.7) < 0.03  # 2400 rows: 4 standard deviations
  assert data.specials == {'eos': 256}


def test_batches_depend_on_seed_and_index_only(tmp_path):
  data = _data(tmp_path)
  batches = [next(data.train_iter) for _ in range(6)]
  data.train_iter.set_state({'next_index': 3})
  for want in batches[3:]:
    got = next(data.train_iter)
    np.testing.assert_array_equal(got['inputs'], want['inputs'])
  part = _data(tmp_path, rows=[1, 5, 6, 15])  # another process's share of the rows
  for want in batches[:3]:
    np.testing.assert_array_equal(next(part.train_iter)['inputs'], want['inputs'][[1, 5, 6, 15]])
  other = _data(tmp_path, seed=1)
  assert not np.array_equal(next(other.train_iter)['inputs'], batches[0]['inputs'])


def test_held_out_splits_hold_every_source(tmp_path):
  data = _data(tmp_path)
  seen = set()
  for batch in data.val_batches(1):
    seen |= set(_source_of_rows(batch))
  assert {'a', 'b'} <= seen  # the first batch already


def test_component_choices_are_the_weighted_draw():
  u = np.random.default_rng(np.random.SeedSequence([3, mixture.MIXTURE_TAG, 9])).random(1000)
  expected = np.where(u < 0.2, 0, np.where(u < 0.5, 1, 2))  # weights 2:3:5 by hand
  np.testing.assert_array_equal(mixture.component_choices(3, 9, 1000, [2, 3, 5]), expected)


@pytest.mark.parametrize('spec', ['a.jsonl', 'a.jsonl:0.5', 'a.jsonl:x,b.jsonl:1',
                                  'a.jsonl:0,b.jsonl:1', ':1,b:1'])
def test_bad_specs(spec):
  with pytest.raises(ConfigError, match='config.data.mixture'):
    mixture.parse(spec)


def test_interleaved_windows_round_robin():
  a, b = np.arange(0, 9), np.arange(100, 104)  # windows of 2: a has 4, b has 2
  tokens = mixture.Interleaved([a, b], 2)
  windows = pipeline.Windows(tokens, 2)
  assert [windows[k].tolist() for k in range(len(windows))] == [
      [0, 1], [100, 101], [2, 3], [102, 103], [4, 5], [6, 7]]
  both = mixture.Concat([a, b])
  np.testing.assert_array_equal(both[7:11], [7, 8, 100, 101])
