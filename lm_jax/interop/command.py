"""`lm-jax convert`: Hugging Face model directory <-> lm_jax run directory.

  lm-jax convert --from-hf DIR --to RUN_DIR [--config F.py [--config.a.b=v ...]]
  lm-jax convert --to-hf OUT_DIR --run RUN_DIR [--step N]

Prints a JSON summary; user mistakes (a missing file, an unsupported
architecture, missing or mis-shaped tensors) are one message and exit 2.
"""

import argparse
import json

from lm_jax.config.loader import parse_cli_config
from lm_jax.errors import ConfigError

USAGE = ('lm-jax convert --from-hf DIR --to RUN_DIR [--config F.py [--config.a.b=v ...]]\n'
         '       lm-jax convert --to-hf OUT_DIR --run RUN_DIR [--step N]')


class _Parser(argparse.ArgumentParser):
  """argparse whose mistakes are ConfigErrors (one line, exit 2, like the rest of the CLI)."""

  def error(self, message):
    raise ConfigError(f'{message}\nusage: {USAGE}')


def _parser() -> argparse.ArgumentParser:
  p = _Parser(prog='lm-jax convert', usage=USAGE, allow_abbrev=False)
  p.add_argument('--from-hf', dest='from_hf', help='Hugging Face model directory to import')
  p.add_argument('--to', help='new lm_jax run directory to import into')
  p.add_argument('--to-hf', dest='to_hf', help='directory to export a run to')
  p.add_argument('--run', help='lm_jax run directory to export')
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')
  return p


def convert_command(argv) -> dict:
  """Runs `lm-jax convert ARGV`; returns the summary it prints."""
  argv = list(argv)
  config = None
  if any(a == '--config' or a.startswith('--config') for a in argv):
    config, argv = parse_cli_config(argv)
  args = _parser().parse_args(argv)
  importing, exporting = args.from_hf is not None, args.to_hf is not None
  if importing == exporting:
    raise ConfigError(f'give either --from-hf DIR --to RUN_DIR or --to-hf OUT_DIR --run '
                      f'RUN_DIR\nusage: {USAGE}')
  if importing:
    if not args.to or args.run or args.step is not None:
      raise ConfigError(f'--from-hf needs --to RUN_DIR (and takes no --run / --step)\n'
                        f'usage: {USAGE}')
    from lm_jax.interop.hf_import import import_hf  # pylint: disable=g-import-not-at-top
    return import_hf(args.from_hf, args.to, config)
  if not args.run or args.to or config is not None:
    raise ConfigError(f'--to-hf needs --run RUN_DIR (and takes no --to / --config)\n'
                      f'usage: {USAGE}')
  from lm_jax.interop.hf_export import export_hf  # pylint: disable=g-import-not-at-top
  return export_hf(args.run, args.to_hf, args.step)


def main(argv) -> None:
  print(json.dumps(convert_command(argv), indent=1, sort_keys=True))
