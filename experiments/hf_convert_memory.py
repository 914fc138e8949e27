"""Peak host memory and time of `lm_jax.interop.import_hf` on a random Llama checkpoint.

    python experiments/hf_convert_memory.py --size 1b --work /tmp/hf_mem

Step 1 (a subprocess): a random LlamaForCausalLM of the chosen size is built
from a config in bfloat16 and saved with save_pretrained as sharded
safetensors. Step 2 (another subprocess, so its peak RSS is its own): the
import, one phase at a time, with each phase's peak RSS (VmHWM, reset between
phases through /proc/self/clear_refs) and wall time: reading config.json and
building; streaming the tensors into the sharded params; the fresh optimizer
state; writing the checkpoint. Prints one JSON object.

On CPU the "devices" are host memory too, so the resident params and
optimizer state count in RSS; what streaming bounds is the extra on top of
them (compare with `largest_tensor_bytes`).
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

SIZES = {
    # Llama 3.2 1B's shape (1.24 B params, tied embeddings).
    '1b': dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
               num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
               tie_word_embeddings=True),
    # A quarter of the layers and width, for a quick look (~0.1 B).
    'small': dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=4,
                  num_attention_heads=16, num_key_value_heads=4, vocab_size=32000,
                  tie_word_embeddings=False),
}


def _status(key: str) -> int:
  """A /proc/self/status memory field in bytes."""
  with open('/proc/self/status', encoding='ascii') as f:
    for line in f:
      if line.startswith(key + ':'):
        return int(line.split()[1]) * 1024
  raise KeyError(key)


def _reset_peak() -> None:
  with open('/proc/self/clear_refs', 'w', encoding='ascii') as f:
    f.write('5')  # resets VmHWM to the current RSS


def make_checkpoint(size: str, hf_dir: str) -> None:
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  cfg = transformers.LlamaConfig(max_position_embeddings=2048, rope_theta=500000.0,
                                 **SIZES[size])
  torch.manual_seed(0)
  torch.set_default_dtype(torch.bfloat16)  # never a float32 copy of the whole model
  with torch.no_grad():
    model = transformers.LlamaForCausalLM(cfg)
  model.save_pretrained(hf_dir, max_shard_size='1GB')


def measure_import(hf_dir: str, run_dir: str, param_dtype: str) -> dict:
  """Each import phase's wall time and peak RSS (bytes)."""
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from lm_jax.build import build  # pylint: disable=g-import-not-at-top
  from lm_jax.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  from lm_jax.config.defaults import base_config  # pylint: disable=g-import-not-at-top
  from lm_jax.interop import hf_import, placement  # pylint: disable=g-import-not-at-top
  from lm_jax.interop.safetensors_reader import SafetensorsCheckpoint  # pylint: disable=g-import-not-at-top
  phases, t_start = {}, time.perf_counter()

  def phase(name, fn):
    _reset_peak()
    t0 = time.perf_counter()
    out = fn()
    phases[name] = {'seconds': round(time.perf_counter() - t0, 2),
                    'peak_rss_bytes': _status('VmHWM'), 'rss_after_bytes': _status('VmRSS')}
    return out

  base = base_config()
  base.model.param_dtype = param_dtype
  base.data.seq_len = 128
  config, _, _ = phase('config', lambda: hf_import.import_config(hf_dir, run_dir, base))
  built = phase('build', lambda: build(config, config.model.vocab_size))
  params = phase('stream_params', lambda: hf_import.read_params(built, hf_dir))
  state = phase('fresh_optimizer_state', lambda: placement.fresh_state(built, params))

  def save():
    ckpt_cfg = ml_collections.ConfigDict(dict(keep=1, async_save=False))
    ckpt = Checkpointer(run_dir, ckpt_cfg)
    ckpt.save(state, hf_import._StartOfData(), config, force=True)  # pylint: disable=protected-access
    ckpt.close()

  phase('save_checkpoint', save)
  with SafetensorsCheckpoint(hf_dir) as ckpt:
    sizes = {n: math.prod(ckpt.shape(n)) for n in ckpt.names}
    dtype_bytes = ckpt.read(min(sizes, key=sizes.get)).dtype.itemsize
  largest = max(sizes, key=sizes.get)
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.to_tree()))
  return {
      'phases': phases, 'total_seconds': round(time.perf_counter() - t_start, 2),
      'num_params': int(sum(x.size for x in jax.tree.leaves(params))),
      'param_dtype': param_dtype,
      'checkpoint_bytes': int(sum(sizes.values()) * dtype_bytes),
      'largest_tensor': largest,
      'largest_tensor_bytes': int(sizes[largest] * dtype_bytes),
      'state_bytes_resident': int(state_bytes),
      'devices': jax.device_count(),
  }


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--size', choices=sorted(SIZES), default='1b')
  p.add_argument('--work', required=True, help='scratch directory (the HF dir and the run)')
  p.add_argument('--param-dtype', default='bfloat16', choices=('float32', 'bfloat16'))
  p.add_argument('--step', choices=('all', 'make', 'import'), default='all')
  args = p.parse_args()
  hf_dir = os.path.join(args.work, f'hf_llama_{args.size}')
  run_dir = os.path.join(args.work, f'run_{args.size}_{args.param_dtype}')
  if args.step == 'make':
    make_checkpoint(args.size, hf_dir)
    return
  if args.step == 'import':
    print(json.dumps(measure_import(hf_dir, run_dir, args.param_dtype)))
    return
  me = [sys.executable, os.path.abspath(__file__), '--size', args.size, '--work', args.work,
        '--param-dtype', args.param_dtype]
  if not os.path.exists(os.path.join(hf_dir, 'config.json')):
    t0 = time.perf_counter()
    subprocess.run(me + ['--step', 'make'], check=True)
    print(f'made {hf_dir} in {time.perf_counter() - t0:.0f} s', file=sys.stderr)
  out = subprocess.run(me + ['--step', 'import'], check=True, capture_output=True, text=True)
  result = json.loads(out.stdout.strip().splitlines()[-1])
  result.update(size=args.size, date=time.strftime('%Y-%m-%d'), machine=platform.node(),
                cpus=os.cpu_count(), python=platform.python_version())
  print(json.dumps(result, indent=1))


if __name__ == '__main__':
  main()
