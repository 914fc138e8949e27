"""Prefill and decode tokens/s of lm_jax's KV-cache decoding beside transformers' `generate`
on the same GPT-2 weights, at batch 1 and 32, for the quickstart and gpt2_small shapes.

  PYTHONPATH=. python experiments/bench_generate.py [--shapes quickstart,gpt2_small]
      [--prompt-len 64] [--new-tokens 32] [--batches 1,32] [--repeats 2]

Prefill: B * prompt_len / time of the first token; decode: B * (new - 1) / time of the rest
(greedy, no stop). Cache bytes per token: K and V of every layer. Prints one JSON line per
measurement; docs/generate.md keeps the numbers with machine, date and load.
"""

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig
from lm_jax.interop.hf_config import apply_keys
from lm_jax.models.decoder.decoding import DECODING
from lm_jax.models.decoder.family import build
from lm_jax.models.decoder.hf import MAPPING

SHAPES = {  # GPT-2 style (the HF model must be GPT-2): layers, d_model, heads, vocab, max_len
    'quickstart': (4, 128, 4, 256, 256),
    'gpt2_small': (12, 768, 12, 50257, 1024),
}


def _models(name: str):
  layers, d, heads, vocab, max_len = SHAPES[name]
  torch.manual_seed(0)
  hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
      vocab_size=vocab, n_positions=max_len, n_embd=d, n_layer=layers, n_head=heads,
      activation_function='gelu_new')).eval()
  # The decoder's own GPT-2 mapping (what `lm-jax convert --from-hf` uses), in memory.
  config = apply_keys(MAPPING.config_from_hf(hf.config.to_dict()), None, f'{name} GPT-2')
  _, cfg = build(config.model, vocab)
  state = {k: v.detach().float().numpy() for k, v in hf.state_dict().items()}
  params = {}
  for path, array in MAPPING.params_from_hf(state.__getitem__, set(state), cfg):
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = jnp.asarray(array)
  return hf, cfg, params


def _time_lm_jax(gen, prompts, new_tokens):
  marks = []
  start = time.perf_counter()
  gen.generate(prompts, new_tokens, on_step=lambda rows: marks.append(time.perf_counter()))
  return marks[0] - start, marks[-1] - marks[0]


def _time_hf(hf, prompts_BxP, new_tokens):
  ids = torch.tensor(prompts_BxP)
  kwargs = dict(do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(ids))
  with torch.no_grad():
    start = time.perf_counter()
    hf.generate(ids, max_new_tokens=1, min_new_tokens=1, **kwargs)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    hf.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
    total = time.perf_counter() - start
  return prefill, max(total - prefill, 1e-9)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--shapes', default='quickstart,gpt2_small')
  parser.add_argument('--prompt-len', type=int, default=64)
  parser.add_argument('--new-tokens', type=int, default=32)
  parser.add_argument('--batches', default='1,32')
  parser.add_argument('--repeats', type=int, default=2)
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count() or 1)
  info = {'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
          'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
                     f'{jax.default_backend()}', 'load_1min': os.getloadavg()[0]}
  print(json.dumps(info))
  for name in args.shapes.split(','):
    hf, cfg, params = _models(name)
    gen = Generator(DECODING, cfg, params, SampleConfig(temperature=0.0), bucket=16)
    for batch in [int(b) for b in args.batches.split(',')]:
      prompts = np.random.default_rng(0).integers(0, cfg.vocab_size,
                                                  (batch, args.prompt_len)).astype(np.int32)
      _time_lm_jax(gen, prompts.tolist(), args.new_tokens)  # compile
      _time_hf(hf, prompts, 2)  # torch's first-call setup
      best = {}
      for _ in range(args.repeats):
        for who, (pre, dec) in (('lm_jax', _time_lm_jax(gen, prompts.tolist(), args.new_tokens)),
                                ('transformers', _time_hf(hf, prompts, args.new_tokens))):
          old = best.get(who, (np.inf, np.inf))
          best[who] = (min(old[0], pre), min(old[1], dec))
      for who, (pre, dec) in best.items():
        print(json.dumps({
            'shape': name, 'impl': who, 'batch': batch, 'prompt_len': args.prompt_len,
            'new_tokens': args.new_tokens,
            'prefill_tokens_per_s': round(batch * args.prompt_len / pre, 1),
            'decode_tokens_per_s': round(batch * (args.new_tokens - 1) / dec, 1),
            'cache_bytes_per_token': DECODING.cache_bytes_per_token(cfg)}), flush=True)
  print(json.dumps({'load_1min_end': os.getloadavg()[0]}))


if __name__ == '__main__':
  main()
