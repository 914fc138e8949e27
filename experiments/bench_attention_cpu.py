"""Forward + backward time of the attention sublayer's layouts on CPU, in one process.

    python experiments/bench_attention_cpu.py [--shape baby|nanogpt] [--reps 200]

Why the CPU attention looks the way it does (lm_jax/models/attention.py). Two
comparisons, each timed A B A B
in one process (min and median over --reps calls of a jitted vjp):

  core:     blockwise causal attention with the G query heads of a kv head as
            rows of one matmul (lm_jax's) against the earlier layout, a 5-D
            [B, K, G, T, H] dot with two free dims (g, q);
  sublayer: q, k, v projections + attention + output projection with three
            projection matmuls (lm_jax's) against one stacked matmul of the same
            kernels (tried: faster here, no measurable gain in a whole train
            step, docs/performance.md), and PyTorch eager's nanoGPT block (one
            qkv Linear + SDPA) for scale.

Shapes: baby = nanoGPT shakespeare-char's (B 12, L 64, d 128, 4 heads); nanogpt =
the 6 x 384 model (B 8, L 256, d 384, 6 heads). Isolated timings: a whole train
step gains less than these (bench_vs_torch.py measures that).
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lm_jax.models.attention import blockwise_causal_attention  # noqa: E402
from lm_jax.models.layers import matmul_2d  # noqa: E402
from lm_jax.models.masks import causal_mask  # noqa: E402

SHAPES = {'baby': (12, 64, 128, 4), 'nanogpt': (8, 256, 384, 6)}  # B, L, D, heads
BIG_NEGATIVE = -0.7 * float(np.finfo(np.float32).max)


def five_d_core(q_BxTxNxH, k_BxSxKxH, v_BxSxKxH, block: int = 64):
  """The earlier blockwise layout: q as [B, K, G, T, H], dots with free dims (g, q)."""
  B, T, N, H = q_BxTxNxH.shape
  K = k_BxSxKxH.shape[2]
  q = (q_BxTxNxH * H ** -0.5).reshape(B, T, K, N // K, H).transpose(0, 2, 3, 1, 4)
  k, v = k_BxSxKxH.transpose(0, 2, 1, 3), v_BxSxKxH.transpose(0, 2, 1, 3)
  outs = []
  for start in range(0, T, block):
    end = min(start + block, T)
    s = jnp.einsum('bkgqh,bksh->bkgqs', q[:, :, :, start:end], k[:, :, :end])
    s = jnp.where(jnp.arange(start, end)[:, None] >= jnp.arange(end)[None, :], s, BIG_NEGATIVE)
    outs.append(jnp.einsum('bkgqs,bksh->bkgqh', jax.nn.softmax(s, axis=-1), v[:, :, :end]))
  return jnp.concatenate(outs, axis=3).transpose(0, 3, 1, 2, 4).reshape(B, T, N, H)


def lm_jax_core(q, k, v):
  return blockwise_causal_attention(q, k, v, causal_mask(), q.shape[-1] ** -0.5)


def sublayer(project_qkv):
  def run(w, x_BxTxD):
    q, k, v = project_qkv(w, x_BxTxD)
    return matmul_2d('btnh,nhd->btd', lm_jax_core(q, k, v), w['out'])
  return run


def three_matmuls(w, x):
  return [matmul_2d('btd,dnh->btnh', x, w[n]) for n in ('query', 'key', 'value')]


def stacked(w, x):
  kernel_DxNx3xH = jnp.stack([w[n] for n in ('query', 'key', 'value')], axis=2)
  y = matmul_2d('btd,dnch->btnch', x, kernel_DxNx3xH)
  return [y[:, :, :, i] for i in range(3)]


def timed_vjp(fn, *args):
  """A no-argument callable running jit(vjp(fn)) on args (last arg: the cotangent)."""
  run = jax.jit(lambda *a: jax.vjp(fn, *a[:-1])[1](a[-1]))
  args = jax.tree.map(jnp.asarray, args)
  return lambda: jax.block_until_ready(run(*args))


def torch_block(B, T, D, N, x, g):
  import torch
  from torch.nn import functional as F
  torch.manual_seed(0)
  tx, tg = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(g)
  qkv, out = torch.nn.Linear(D, 3 * D, bias=False), torch.nn.Linear(D, D, bias=False)

  def run():
    tx.grad = qkv.weight.grad = out.weight.grad = None
    q, k, v = qkv(tx).split(D, dim=2)
    heads = lambda t: t.view(B, T, N, D // N).transpose(1, 2)
    y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
    out(y.transpose(1, 2).contiguous().view(B, T, D)).backward(tg)
  return run


def compare(cases: dict, reps: int) -> None:
  for f in cases.values():
    for _ in range(5):
      f()
  times = {n: [] for n in cases}
  for _ in range(reps):
    for n, f in cases.items():
      start = time.perf_counter()
      f()
      times[n].append(time.perf_counter() - start)
  for n, t in times.items():
    print(f'  {n:34s} min {1e3 * min(t):7.3f} ms   median {1e3 * np.median(t):7.3f} ms')


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--shape', choices=sorted(SHAPES), default='baby')
  p.add_argument('--reps', type=int, default=200)
  a = p.parse_args()
  B, T, D, N = SHAPES[a.shape]
  H = D // N
  rng = np.random.default_rng(0)
  q, k, v, g = (rng.standard_normal((B, T, N, H)).astype(np.float32) for _ in range(4))
  want = jax.jit(lambda *t: jax.vjp(five_d_core, *t[:3])[1](t[3]))(q, k, v, g)
  got = jax.jit(lambda *t: jax.vjp(lm_jax_core, *t[:3])[1](t[3]))(q, k, v, g)
  diff = max(float(jnp.abs(x - y).max()) for x, y in zip(want, got))
  print(f'{a.shape}: B {B}, L {T}, d {D}, {N} heads; core gradients agree to {diff:.1e}')
  print('attention core, forward + backward:')
  compare({'5-D [B,K,G,T,H] dots (earlier)': timed_vjp(five_d_core, q, k, v, g),
           'rows = (query, group) (lm_jax)': timed_vjp(lm_jax_core, q, k, v, g)}, a.reps)
  w = {n: (0.05 * rng.standard_normal((D, N, H))).astype(np.float32)
       for n in ('query', 'key', 'value')}
  w['out'] = (0.05 * rng.standard_normal((N, H, D))).astype(np.float32)
  x, gx = (rng.standard_normal((B, T, D)).astype(np.float32) for _ in range(2))
  print('attention sublayer (projections + core + out), forward + backward:')
  compare({'q, k, v: three matmuls (lm_jax)': timed_vjp(sublayer(three_matmuls), w, x, gx),
           'q, k, v: one stacked matmul': timed_vjp(sublayer(stacked), w, x, gx),
           'PyTorch eager (qkv Linear + SDPA)': torch_block(B, T, D, N, x, gx)}, a.reps)


if __name__ == '__main__':
  main()
