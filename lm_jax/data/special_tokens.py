"""Special tokens ([CLS], [SEP], [MASK], padding, BOS/EOS, T5 sentinels) by role.

A task names the roles it needs (lm_jax/data/tasks); `special_ids(tokenizer,
roles)` gives their ids. The tokenizers trained here (byte, char, bpe) have
no special tokens of their own, so roles get fixed ids after the text
vocabulary, in the canonical order below: `<eos>` is always
text_vocab_size + 0, `<mask>` + 5, sentinel k + 6 + k, whichever roles a
task needs. A tokenizer that has its own special tokens (a pretrained one)
provides `own_special_ids()`, and its ids win.

The model's vocabulary is then `model_vocab_size(tokenizer, roles)`: the text
ids plus every special id a task may emit.
"""

NUM_SENTINELS = 100  # T5's extra_ids
ROLES = ('eos', 'pad', 'bos', 'cls', 'sep', 'mask') + tuple(
    f'sentinel_{k}' for k in range(NUM_SENTINELS))
_INDEX = {role: i for i, role in enumerate(ROLES)}
# How each role is spelled when decoded (tokenizers' decode of an appended id).
SPELLING = {'eos': '<eos>', 'pad': '<pad>', 'bos': '<bos>', 'cls': '[CLS]',
            'sep': '[SEP]', 'mask': '[MASK]',
            **{f'sentinel_{k}': f'<extra_id_{k}>' for k in range(NUM_SENTINELS)}}


def sentinel_roles(count: int) -> tuple[str, ...]:
  """The first `count` sentinel roles (T5 span corruption uses one per span)."""
  if count > NUM_SENTINELS:
    raise ValueError(f'{count} sentinels asked for; at most {NUM_SENTINELS} exist')
  return tuple(f'sentinel_{k}' for k in range(count))


def special_ids(tokenizer, roles) -> dict[str, int]:
  """{role: id} for `roles`: the tokenizer's own ids where it has them, else appended ids."""
  own = getattr(tokenizer, 'own_special_ids', lambda: {})()
  ids = {}
  for role in roles:
    if role not in _INDEX:
      raise ValueError(f'unknown special token role {role!r}; known: {", ".join(ROLES[:6])}, '
                       'sentinel_<k>')
    ids[role] = own[role] if role in own else tokenizer.vocab_size + _INDEX[role]
  return ids


def model_vocab_size(tokenizer, roles) -> int:
  """Ids the model must embed: the text vocabulary and every special id of `roles`."""
  ids = special_ids(tokenizer, roles)
  return max([tokenizer.vocab_size - 1, *ids.values()]) + 1
