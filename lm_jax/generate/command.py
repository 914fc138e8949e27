"""`lm-jax generate` and `lm-jax chat`: text from a trained run directory.

  lm-jax generate --run RUN_DIR [--step N] --prompt TEXT [--config.sample.KEY=VALUE ...]
  lm-jax generate --run RUN_DIR --prompts-file F [--output OUT.jsonl] [--batch-size 8]
  lm-jax chat --run RUN_DIR [--template qa|none] [--history]

One prompt streams its continuation to stdout as it is produced; a prompts
file (one prompt a line, or JSONL with a "prompt" field) writes one JSON line
per prompt. With --config.sample.num_beams=K (K > 1) `generate` runs beam
search instead of sampling (deterministic: the best beam is printed whole, and
the JSON lines add its "score"). `chat` reads one message a line from stdin,
keeps the model compiled between turns (prompts are padded to length buckets),
and with the `qa` template asks "Question: ...\\nAnswer:" and stops at the next
line; it samples (no beams).
"""

import argparse
import json
import sys

from lm_jax.errors import ConfigError

TEMPLATES = {
    'none': ('{message}', ()),
    'qa': ('Question: {message}\nAnswer:', ('\n',)),
}


def run_parser(prog: str) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog=prog, add_help=False)
  parser.add_argument('--run', required=True)
  parser.add_argument('--step', type=int, default=None)
  return parser


def parse_run_args(parser: argparse.ArgumentParser, argv):
  try:
    args, rest = parser.parse_known_args(argv)
  except SystemExit as e:  # argparse's usage error: a user error, exit 2 like the others
    raise ConfigError(f'{parser.prog}: bad arguments {" ".join(argv)}') from e
  bad = [a for a in rest if a.startswith('--') and not a.startswith('--config.')]
  if bad:
    raise ConfigError(f'unknown arguments for {parser.prog}: {" ".join(bad)}\n{__doc__}')
  return args, rest


def _generator(run, **kwargs):
  from lm_jax.generate.decode_loop import Generator
  from lm_jax.generate.load import sample_config
  # Prompts on the params' (one-device) mesh, so every step sees the same input shardings
  # and compiles once.
  return Generator(run.decoding, run.built.model_cfg, run.params, sample_config(run.config),
                   batch_sharding=run.built.batch_sharding, **kwargs)


def _stop_strings(run, extra=()) -> tuple[str, ...]:
  return tuple(s for s in tuple(run.config.sample.stop) + tuple(extra) if s)


def generate_command(argv) -> int:
  """Runs `lm-jax generate`; returns the exit code."""
  from lm_jax.generate.load import load_run
  parser = run_parser('lm-jax generate')
  parser.add_argument('--prompt', default=None)
  parser.add_argument('--prompts-file', default=None)
  parser.add_argument('--output', default=None)
  parser.add_argument('--batch-size', type=int, default=8)
  args, overrides = parse_run_args(parser, argv)
  if (args.prompt is None) == (args.prompts_file is None):
    raise ConfigError('lm-jax generate: give exactly one of --prompt TEXT or --prompts-file F')
  prompts = [args.prompt] if args.prompt is not None else read_text_lines(args.prompts_file)
  run = load_run(args.run, args.step, overrides)
  gen, s = _generator(run), run.config.sample
  tok = run.tokenizer
  if s.num_beams > 1:
    return _beam_search_command(run, gen, prompts, args)
  if args.prompt is not None:
    shown = [0]

    def stream(rows):
      text = rows[0].text
      if not text.endswith('\ufffd'):  # half a UTF-8 character: wait for the rest
        sys.stdout.write(text[shown[0]:])
        sys.stdout.flush()
        shown[0] = len(text)

    row = gen.generate([tok.encode(args.prompt)], s.max_new_tokens, seed=s.seed,
                       stop_tokens=run.stop_tokens, stop_strings=_stop_strings(run),
                       decode=run.decode, on_step=stream)[0]
    sys.stdout.write(row.text[shown[0]:] + '\n')
    return 0

  def batch_rows(batch, start):
    rows = gen.generate([tok.encode(p) for p in batch], s.max_new_tokens, seed=s.seed,
                        stop_tokens=run.stop_tokens, stop_strings=_stop_strings(run),
                        decode=run.decode, row_ids=range(start, start + len(batch)))
    return [(row, {}) for row in rows]

  _write_jsonl(run, prompts, args, batch_rows)
  return 0


def _beam_search_command(run, gen, prompts, args) -> int:
  """`generate` with config.sample.num_beams > 1: the best beam of each prompt."""
  from lm_jax.generate.beam_search import beam_search
  s, tok = run.config.sample, run.tokenizer

  def batch_rows(batch, start):
    del start  # beam search does not sample: no per-row keys
    stops = _stop_strings(run)
    results = beam_search(gen, [tok.encode(p) for p in batch], s.max_new_tokens,
                          num_beams=s.num_beams, length_penalty=s.length_penalty,
                          stop_tokens=run.stop_tokens, stop_strings=stops, decode=run.decode)
    return [(_beam_row(tokens, run.decode(tokens), stops, s.max_new_tokens), {'score': score})
            for tokens, score in results]

  if args.prompt is not None:
    sys.stdout.write(batch_rows(prompts, 0)[0][0].text + '\n')
    return 0
  _write_jsonl(run, prompts, args, batch_rows)
  return 0


def _beam_row(tokens, text, stop_strings, max_new_tokens):
  """The best beam as a Generated row: its text cut at the first stop string it holds."""
  from lm_jax.generate.decode_loop import Generated
  cuts = [text.find(x) for x in stop_strings if x in text]
  if cuts:
    return Generated(tokens, text[:min(cuts)], 'stop_string')
  return Generated(tokens, text, 'length' if len(tokens) == max_new_tokens else 'stop_token')


def _write_jsonl(run, prompts, args, batch_rows) -> None:
  """One JSON line per prompt, to --output or stdout; batch_rows(prompts, first row id) ->
  [(Generated, extra fields)]."""
  out = open(args.output, 'w', encoding='utf-8') if args.output else sys.stdout
  try:
    for start in range(0, len(prompts), args.batch_size):
      batch = prompts[start:start + args.batch_size]
      for prompt, (row, extra) in zip(batch, batch_rows(batch, start)):
        out.write(json.dumps({'prompt': prompt, 'completion': row.text, 'finish': row.finish,
                              'tokens': len(row.tokens), 'step': run.step, **extra},
                             ensure_ascii=False) + '\n')
      out.flush()
  finally:
    if out is not sys.stdout:
      out.close()


def read_text_lines(path: str, field: str = 'prompt', flag: str = '--prompts-file') -> list[str]:
  """One text a line; JSONL lines give theirs as `field` (`flag`: the option, for errors)."""
  try:
    with open(path, encoding='utf-8') as f:
      lines = [line.rstrip('\n') for line in f if line.strip()]
  except OSError as e:
    raise ConfigError(f'{flag} {path}: {e.strerror}') from e
  prompts = []
  for n, line in enumerate(lines, 1):
    if path.endswith('.jsonl'):
      try:
        prompts.append(json.loads(line)[field])
      except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f'{flag} {path}:{n}: expected a JSON object with a "{field}" '
                          f'string ({e})') from e
    else:
      prompts.append(line)
  if not prompts:
    raise ConfigError(f'{flag} {path}: no {field}s in it')
  return prompts


def chat(run, lines, out, template: str = 'qa', history: bool = False, gen=None):
  """Answers each message of `lines` on `out`; returns the Generator (its compiled steps)."""
  if template not in TEMPLATES:
    raise ConfigError(f'--template {template}: choose one of {", ".join(TEMPLATES)}')
  form, stops = TEMPLATES[template]
  if run.config.sample.num_beams > 1:
    raise ConfigError(f'config.sample.num_beams={run.config.sample.num_beams}: lm-jax chat '
                      'samples (one reply at a time, streamed); use num_beams=1 here, or beams '
                      'with lm-jax generate')
  gen = gen or _generator(run, bucket=64)
  s, tok, context = run.config.sample, run.tokenizer, ''
  for turn, message in enumerate(lines):
    message = message.rstrip('\n')
    if not message.strip():
      continue
    prompt = context + form.format(message=message)
    row = gen.generate([tok.encode(prompt)], s.max_new_tokens, seed=s.seed + turn,
                       stop_tokens=run.stop_tokens, stop_strings=_stop_strings(run, stops),
                       decode=run.decode)[0]
    answer = row.text.strip()
    out.write(answer + '\n')
    out.flush()
    if history:
      context = prompt + row.text + '\n'
  return gen


def chat_command(argv) -> int:
  """Runs `lm-jax chat` on stdin; returns the exit code."""
  from lm_jax.generate.load import load_run
  parser = run_parser('lm-jax chat')
  parser.add_argument('--template', default='qa')
  parser.add_argument('--history', action='store_true')
  args, overrides = parse_run_args(parser, argv)
  run = load_run(args.run, args.step, overrides)
  if sys.stdin.isatty():
    print(f'step {run.step}; one message a line, Ctrl-D to quit', file=sys.stderr)
  chat(run, sys.stdin, sys.stdout, args.template, args.history)
  return 0
