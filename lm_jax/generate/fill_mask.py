"""`lm-jax fill-mask`: the top predictions for each [MASK] of a text, from an encoder run.

  lm-jax fill-mask --run RUN_DIR [--step N] --text "The [MASK] sat" [--top-k 5]
  lm-jax fill-mask --run RUN_DIR --texts-file F [--output OUT.jsonl] [--batch-size 8]

The literal `[MASK]` in a text becomes the run's mask id: the text is split on
the marker, each piece encoded with the run's tokenizer, and the row is
[CLS] piece_0 [MASK] piece_1 ... [SEP] with token type 0, as the mlm task
builds a single-sentence row (lm_jax/data/tasks/mlm.py). Probabilities are the
softmax of the MLM logits over the model's real vocabulary (the text ids and
the special ids; not the padding up to model.vocab_multiple). One --text
prints a table; a texts file (one text a line, or JSONL with a "text" field)
writes one JSON line per text.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from lm_jax.data import special_tokens
from lm_jax.errors import ConfigError
from lm_jax.generate.command import parse_run_args, read_text_lines, run_parser
from lm_jax.models.registry import all_families

MASK_MARKER = '[MASK]'
_ROLES = ('cls', 'sep', 'mask')  # the special tokens of a fill-mask row
_BUCKET = 32  # rows are padded to a multiple of this, so most batches reuse a compile


def check_has_mask(text: str) -> None:
  if MASK_MARKER not in text:
    raise ConfigError(f'text {text!r} has no {MASK_MARKER}: put {MASK_MARKER} where a token '
                      'should be predicted')


def masked_ids(text: str, tokenizer, specials: dict[str, int]) -> np.ndarray:
  """[CLS] + the pieces of `text` around each literal [MASK], encoded, with mask ids + [SEP]."""
  check_has_mask(text)
  pieces = text.split(MASK_MARKER)
  ids = [specials['cls']]
  for n, piece in enumerate(pieces):
    if n:
      ids.append(specials['mask'])
    ids.extend(int(i) for i in tokenizer.encode(piece))
  ids.append(specials['sep'])
  return np.asarray(ids, np.int32)


class FillMasker:
  """A loaded encoder run's top-k predictions at the [MASK] positions of texts."""

  def __init__(self, run, top_k: int = 5):
    family, roles = run.built.family, run.built.task.special_tokens(run.config.data)
    if 'mlm' not in family.tasks or not set(_ROLES) <= set(roles):
      mlm = [f.name for f in all_families() if 'mlm' in f.tasks]
      raise ConfigError(f'config.model.family={family.name!r} has no masked-LM head: '
                        f'fill-mask needs a run of a family trained with the mlm task '
                        f'({", ".join(mlm)}; this run\'s task: {run.built.task.name!r})')
    self.vocab_size = run.built.model_cfg.vocab_size
    if not 1 <= top_k <= self.vocab_size:
      raise ConfigError(f'--top-k {top_k}: must be in [1, {self.vocab_size}] (the vocabulary)')
    self.run, self.top_k, self.tokenizer = run, top_k, run.tokenizer
    self.specials = special_tokens.special_ids(self.tokenizer, roles)
    # Every role's id -> its spelling; where two roles share an id, the task's role names it.
    self._spelled = {}
    for ids in (special_tokens.special_ids(self.tokenizer, special_tokens.ROLES), self.specials):
      self._spelled.update({i: special_tokens.SPELLING[role] for role, i in ids.items()})
    self.max_len = run.built.model_cfg.max_len
    apply, V, k = run.built.fns.apply, self.vocab_size, top_k

    def top(params, batch):
      logits_BxLxV = apply({'params': params}, batch)['logits'][..., :V]
      return jax.lax.top_k(jax.nn.softmax(logits_BxLxV.astype(jnp.float32), axis=-1), k)

    self._top = jax.jit(top)

  def token_text(self, i: int) -> str:
    """How id `i` reads: a special token's spelling, else the tokenizer's decode."""
    if i in self._spelled:
      return self._spelled[i]
    return self.tokenizer.decode([i]) if i < self.tokenizer.vocab_size else f'<id {i}>'

  def predict(self, texts: list[str]) -> list[dict]:
    """Per text: {'text', 'filled' (each mask -> its best token), 'masks': [{'position',
    'predictions': [{'id', 'token', 'prob'}, ...] best first}, ...]}."""
    rows = [masked_ids(t, self.tokenizer, self.specials) for t in texts]
    longest = max(len(r) for r in rows)
    if longest > self.max_len:
      raise ConfigError(f'a text is {longest} tokens with [CLS] and [SEP]; the model takes at '
                        f'most model.max_len={self.max_len}')
    L = min(self.max_len, -(-longest // _BUCKET) * _BUCKET)
    inputs_BxL = np.full((len(rows), L), self.specials.get('pad', 0), np.int32)
    padding_BxL = np.zeros((len(rows), L), bool)
    for b, r in enumerate(rows):
      inputs_BxL[b, :len(r)], padding_BxL[b, :len(r)] = r, True
    sharding = self.run.built.batch_sharding
    batch = {'inputs': jax.device_put(inputs_BxL, sharding),
             'token_types': jax.device_put(np.zeros_like(inputs_BxL), sharding),
             'padding_mask': jax.device_put(padding_BxL, sharding)}
    probs_BxLxK, ids_BxLxK = jax.device_get(self._top(self.run.params, batch))
    results = []
    for b, (text, r) in enumerate(zip(texts, rows)):
      masks = []
      for pos in np.flatnonzero(r == self.specials['mask']):
        masks.append({'position': int(pos), 'predictions': [
            {'id': int(i), 'token': self.token_text(int(i)), 'prob': float(p)}
            for i, p in zip(ids_BxLxK[b, pos], probs_BxLxK[b, pos])]})
      best = iter(m['predictions'][0]['token'] for m in masks)
      filled = ''.join(piece if n == 0 else next(best) + piece
                       for n, piece in enumerate(text.split(MASK_MARKER)))
      results.append({'text': text, 'filled': filled, 'masks': masks})
    return results


def _print_table(result: dict, out) -> None:
  out.write(f'{result["text"]}\n')
  for n, mask in enumerate(result['masks'], 1):
    out.write(f'[MASK] {n} (token {mask["position"]}):\n')
    for rank, p in enumerate(mask['predictions'], 1):
      out.write(f'  {rank:>2}. {p["prob"]:.6f}  id {p["id"]:<6} {p["token"]!r}\n')
  out.write(f'best: {result["filled"]}\n')


def fill_mask_command(argv) -> int:
  """Runs `lm-jax fill-mask`; returns the exit code."""
  from lm_jax.generate.load import load_run  # pylint: disable=g-import-not-at-top
  parser = run_parser('lm-jax fill-mask')
  parser.add_argument('--text', default=None)
  parser.add_argument('--texts-file', default=None)
  parser.add_argument('--output', default=None)
  parser.add_argument('--top-k', type=int, default=5)
  parser.add_argument('--batch-size', type=int, default=8)
  args, overrides = parse_run_args(parser, argv)
  if (args.text is None) == (args.texts_file is None):
    raise ConfigError('lm-jax fill-mask: give exactly one of --text TEXT or --texts-file F')
  for flag, value in (('--batch-size', args.batch_size), ('--top-k', args.top_k)):
    if value < 1:
      raise ConfigError(f'{flag} {value}: must be >= 1')
  texts = ([args.text] if args.text is not None
           else read_text_lines(args.texts_file, field='text', flag='--texts-file'))
  for text in texts:  # before loading the checkpoint: a text mistake costs nothing
    check_has_mask(text)
  run = load_run(args.run, args.step, overrides)
  masker = FillMasker(run, args.top_k)
  if args.text is not None:
    _print_table(masker.predict(texts)[0], sys.stdout)
    return 0
  out = open(args.output, 'w', encoding='utf-8') if args.output else sys.stdout
  try:
    for start in range(0, len(texts), args.batch_size):
      for result in masker.predict(texts[start:start + args.batch_size]):
        out.write(json.dumps({**result, 'step': run.step}, ensure_ascii=False) + '\n')
      out.flush()
  finally:
    if out is not sys.stdout:
      out.close()
  return 0
