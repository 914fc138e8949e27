"""`train(config)`: what `lm-jax train` does after the command line is parsed.

The one place the training loop is given its evaluator (lm_jax/train and
lm_jax/evaluate do not import each other).
"""

import ml_collections

from lm_jax.evaluate import make_evaluator
from lm_jax.run import build_run
from lm_jax.train import loop
from lm_jax.train.output_dirs import check_writable


def train(config: ml_collections.ConfigDict) -> dict[str, float]:
  """Builds the run, its validation evaluator (if train.eval_every), and trains."""
  check_writable(config)  # before build_run writes the token cache and tokenizer
  run = build_run(config)
  evaluate = make_evaluator(run) if config.train.eval_every else None
  return loop.train(run, evaluate)
