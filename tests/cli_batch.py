"""Runs many `lm-jax` command lines in one Python process (tests of user errors).

    python -m tests.cli_batch CASES.json RESULTS.json

CASES.json: {"cases": {name: [arg, ...]}, "watch": [dir, ...]}. Each command line
goes to lm_jax.cli.main as `python -m lm_jax.cli ARGS` would take it, with file
descriptor 2 pointed at a file of its own, and the result records what such a
process shows: its exit code (1 and the traceback for an exception that escapes,
as the interpreter does), its stderr, and which watched directories it changed
(their digests before and after differ). One process for all cases, so JAX starts once.
"""

import json
import os
import sys
import tempfile
import traceback

from tests.run_helpers import tree_digest


def run_case(argv: list[str]) -> tuple[int, str]:
  """(exit code, stderr) of lm_jax.cli.main(argv), stderr caught at the descriptor."""
  from lm_jax import cli  # pylint: disable=g-import-not-at-top
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode='w+') as err:
    os.dup2(err.fileno(), 2)
    try:
      cli.main(argv)
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # pylint: disable=broad-except
      traceback.print_exc()
      code = 1
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
    err.seek(0)
    return code, err.read()


def main(cases_path: str, results_path: str):
  with open(cases_path, encoding='utf-8') as f:
    spec = json.load(f)
  results = {}
  digests = {d: tree_digest(d) for d in spec['watch']}
  for name, argv in spec['cases'].items():
    code, stderr = run_case(argv)
    after = {d: tree_digest(d) for d in spec['watch']}
    results[name] = {'code': code, 'stderr': stderr,
                     'changed': [d for d in spec['watch'] if after[d] != digests[d]]}
    digests = after
  with open(results_path, 'w', encoding='utf-8') as f:
    json.dump(results, f)


if __name__ == '__main__':
  main(*sys.argv[1:])
