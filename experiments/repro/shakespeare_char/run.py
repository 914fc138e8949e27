"""Runs nanoGPT's shakespeare_char recipe with lm-jax train, then checks the result.

    python experiments/repro/shakespeare_char/run.py [--variant cpu|gpu] [--run-dir DIR]

Needs ../shared/data/tinyshakespeare.txt. The run resumes if DIR has checkpoints.
Exit code: 0 PASS, 1 FAIL, 2 the run itself failed.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, ROOT)

from experiments.repro.shakespeare_char import check  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--variant', choices=('cpu', 'gpu'), default='cpu')
  parser.add_argument('--run-dir', default=None)
  parser.add_argument('--tolerance', type=float, default=0.02)
  args, overrides = parser.parse_known_args()
  run_dir = args.run_dir or os.path.join(ROOT, 'runs', f'repro_shakespeare_char_{args.variant}')
  cmd = [sys.executable, '-m', 'lm_jax.cli', 'train',
         '--config', os.path.join(HERE, f'config.py:{args.variant}'),
         f'--config.logging.run_dir={run_dir}', *overrides]
  print(' '.join(cmd), flush=True)
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  if subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode:
    sys.exit(2)
  sys.exit(0 if check.check(run_dir, args.variant, args.tolerance) else 1)


if __name__ == '__main__':
  main()
