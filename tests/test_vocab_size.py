"""A model.vocab_size smaller than the tokenizer's vocabulary is refused up front
(ids past the embedding trained into NaN before): exit 2, one message naming
both sizes, nothing trained or saved."""

import os
import re

import pytest

from tests.run_helpers import QUICK, run_cli, tiny_overrides


@pytest.mark.parametrize('tokenizer', ['byte', 'char'])
def test_model_vocab_smaller_than_tokenizer_is_a_config_error(tmp_path, tokenizer):
  run_dir = tmp_path / 'run'
  flags = tiny_overrides(str(run_dir), 2)
  done = run_cli('train', '--config', QUICK, *flags, '--config.model.vocab_size=40',
                 f'--config.data.tokenizer={tokenizer}')
  assert done.returncode == 2, done.stderr[-2000:]
  assert 'Traceback' not in done.stderr
  error = [line for line in done.stderr.splitlines() if line.startswith('error:')]
  assert len(error) == 1, done.stderr
  assert 'config.model.vocab_size=40' in error[0]
  sizes = re.search(rf"{tokenizer} tokenizer's vocabulary of (\d+) tokens", error[0])
  assert sizes, error[0]
  if tokenizer == 'byte':
    assert int(sizes.group(1)) == 256
  else:  # the distinct characters of the quickstart's Python sources
    assert int(sizes.group(1)) > 40
  assert not os.path.exists(run_dir / 'checkpoints')
