"""An lm-evaluation-harness model for lm_jax runs: `loglikelihood`, `loglikelihood_rolling`,
`generate_until`, batched.

Registered as `lm_jax` when this module is imported (lm-eval finds only the
models it imports itself, so use `lm-jax harness`, or import this module
before `lm_eval.simple_evaluate(model='lm_jax', model_args='run=RUN_DIR')`).
Scoring follows lm-eval's `hf` model: a context + continuation longer than the
model's max_len keeps its last max_len + 1 tokens; an empty context is the
prefix token (lm-eval's rule); rolling windows are lm-eval's own.
"""

import jax
import jax.numpy as jnp
import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval import utils as lm_utils

from lm_jax.generate.decode_loop import Generator, round_up
from lm_jax.generate.sampling import SampleConfig


def _score(apply_fn, params, inputs_BxL, targets_BxL, weights_BxL):
  """(sum of log p(target) over weighted positions [B], whether each was the argmax [B])."""
  logits_BxLxV = apply_fn({'params': params}, {'inputs': inputs_BxL})['logits']
  logp_BxLxV = jax.nn.log_softmax(logits_BxLxV.astype(jnp.float32), axis=-1)
  logp_BxL = jnp.take_along_axis(logp_BxLxV, targets_BxL[..., None], axis=-1)[..., 0]
  greedy_BxL = jnp.argmax(logits_BxLxV, axis=-1) == targets_BxL
  weighted = weights_BxL > 0
  return (jnp.sum(jnp.where(weighted, logp_BxL, 0.0), axis=-1),
          jnp.all(greedy_BxL | ~weighted, axis=-1))


@register_model('lm_jax')
class LmJaxLM(TemplateLM):
  """A loaded run (lm_jax.generate.load.LoadedRun) or `run=RUN_DIR [step=N]` as an lm-eval LM."""

  def __init__(self, run=None, step=None, batch_size=8, prefix_token_id=None, loaded=None,
               bucket=16, **kwargs):
    super().__init__()
    del kwargs  # lm-eval passes device/dtype settings that a JAX run does not take
    if loaded is None:
      from lm_jax.generate.load import load_run  # pylint: disable=g-import-not-at-top
      loaded = load_run(run, None if step is None else int(step))
    self.loaded, self.batch_size, self.bucket = loaded, int(batch_size), int(bucket)
    self.max_length = loaded.built.model_cfg.max_len
    newline = loaded.tokenizer.encode('\n')
    self._prefix = int(prefix_token_id) if prefix_token_id is not None else int(newline[0])
    self._score = jax.jit(lambda *a: _score(loaded.built.fns.apply, *a))

  @property
  def eot_token_id(self) -> int:
    return self._prefix

  def tok_encode(self, string: str, add_special_tokens=None, **kwargs) -> list[int]:
    del add_special_tokens, kwargs
    return self.loaded.tokenizer.encode(string).tolist()

  def tok_decode(self, tokens) -> str:
    return self.loaded.tokenizer.decode(tokens)

  def _score_pairs(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
    """(log p(continuation | context), greedy) per (context ids, continuation ids), in order."""
    results = [None] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]) - len(pairs[i][1]))
    for start in range(0, len(order), self.batch_size):
      rows = order[start:start + self.batch_size]
      seqs = [(pairs[i][0] + pairs[i][1])[-(self.max_length + 1):] for i in rows]
      length = min(round_up(max(len(s) - 1 for s in seqs), self.bucket), self.max_length)
      inputs = np.zeros((self.batch_size, length), np.int32)
      targets = np.zeros_like(inputs)
      weights = np.zeros(inputs.shape, np.float32)
      for r, (i, seq) in enumerate(zip(rows, seqs)):
        n = len(seq) - 1
        inputs[r, :n], targets[r, :n] = seq[:-1], seq[1:]
        weights[r, n - len(pairs[i][1]):n] = 1.0
      logp, greedy = jax.device_get(self._score(self.loaded.params, inputs, targets, weights))
      for r, i in enumerate(rows):
        results[i] = (float(logp[r]), bool(greedy[r]))
    return results

  def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
    del disable_tqdm, kwargs
    results = self._score_pairs([(ctx, cont) for _, ctx, cont in requests])
    for (key, _, _), result in zip(requests, results):
      self.cache_hook.add_partial('loglikelihood', key, result)
    return results

  def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
    del disable_tqdm
    pairs, owner = [], []
    for n, (text,) in enumerate(req.args for req in requests):
      for window in lm_utils.get_rolling_token_windows(
          token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
          max_seq_len=self.max_length, context_len=1):
        ctx, cont = lm_utils.make_disjoint_window(window)
        pairs.append((ctx, cont))
        owner.append(n)
    totals = [0.0] * len(requests)
    for n, (logp, _) in zip(owner, self._score_pairs(pairs)):
      totals[n] += logp
    for req, total in zip(requests, totals):
      self.cache_hook.add_partial('loglikelihood_rolling', (req.args[0],), total)
    return totals

  def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
    del disable_tqdm
    out = [None] * len(requests)
    groups: dict[str, list[int]] = {}
    for i, req in enumerate(requests):
      groups.setdefault(repr(sorted(req.args[1].items())), []).append(i)
    for indices in groups.values():
      kwargs = dict(requests[indices[0]].args[1])
      until = kwargs.get('until') or []
      until = [until] if isinstance(until, str) else list(until)
      max_new = int(kwargs.get('max_gen_toks', 256))
      max_new = min(max_new, self.max_length - 1)
      temperature = float(kwargs.get('temperature', 0.0)) if kwargs.get('do_sample') else 0.0
      gen = Generator(self.loaded.decoding, self.loaded.built.model_cfg, self.loaded.params,
                      SampleConfig(temperature=temperature), bucket=64,
                      batch_sharding=self.loaded.built.batch_sharding)
      for start in range(0, len(indices), self.batch_size):
        rows = indices[start:start + self.batch_size]
        done = gen.generate([self.tok_encode(requests[i].args[0]) for i in rows], max_new,
                            stop_strings=until, decode=self.tok_decode, row_ids=rows)
        for i, row in zip(rows, done):
          out[i] = row.text
          self.cache_hook.add_partial('generate_until', requests[i].args, row.text)
    return out
