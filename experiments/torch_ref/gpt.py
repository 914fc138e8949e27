"""The quickstart / nanoGPT decoder in PyTorch (eager), for CPU speed comparisons.

The same model lm_jax's decoder family builds with the defaults of
configs/quickstart.py: pre-LN blocks, LayerNorm (eps 1e-5, no bias when
use_bias is off), learned positions, GELU (tanh) MLP of 4 d_model, causal
attention through `scaled_dot_product_attention`, no biases, tied embeddings,
fp32, dropout 0 — nanoGPT's model.py with bias=False. One train step is
AdamW (nanoGPT's fused-free torch.optim.AdamW: decay on matrices and
embeddings only) plus gradient clipping at 1.0, as lm_jax's default optimizer.
"""

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F


@dataclasses.dataclass(frozen=True)
class GPTShape:
  num_layers: int
  num_heads: int
  d_model: int
  seq_len: int
  batch_size: int
  vocab_size: int


class Block(nn.Module):
  """x + attn(ln(x)); x + mlp(ln(x))."""

  def __init__(self, shape: GPTShape):
    super().__init__()
    d = shape.d_model
    self.num_heads = shape.num_heads
    self.ln_1 = nn.LayerNorm(d, bias=False)
    self.qkv = nn.Linear(d, 3 * d, bias=False)
    self.proj = nn.Linear(d, d, bias=False)
    self.ln_2 = nn.LayerNorm(d, bias=False)
    self.up = nn.Linear(d, 4 * d, bias=False)
    self.down = nn.Linear(4 * d, d, bias=False)

  def forward(self, x_BxLxD):
    B, L, D = x_BxLxD.shape
    q, k, v = self.qkv(self.ln_1(x_BxLxD)).split(D, dim=2)
    heads = lambda t: t.view(B, L, self.num_heads, D // self.num_heads).transpose(1, 2)
    y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
    x_BxLxD = x_BxLxD + self.proj(y.transpose(1, 2).contiguous().view(B, L, D))
    return x_BxLxD + self.down(F.gelu(self.up(self.ln_2(x_BxLxD)), approximate='tanh'))


class GPT(nn.Module):
  """tokens [B, L] -> logits [B, L, V]."""

  def __init__(self, shape: GPTShape):
    super().__init__()
    self.wte = nn.Embedding(shape.vocab_size, shape.d_model)
    self.wpe = nn.Embedding(shape.seq_len, shape.d_model)
    self.blocks = nn.ModuleList([Block(shape) for _ in range(shape.num_layers)])
    self.ln_f = nn.LayerNorm(shape.d_model, bias=False)
    for name, p in self.named_parameters():
      if p.dim() == 2:
        std = 0.02 / math.sqrt(2 * shape.num_layers) if name.endswith(('proj.weight',
                                                                       'down.weight')) else 0.02
        nn.init.normal_(p, std=std)

  def forward(self, tokens_BxL):
    x = self.wte(tokens_BxL) + self.wpe(torch.arange(tokens_BxL.shape[1]))
    for block in self.blocks:
      x = block(x)
    return self.ln_f(x) @ self.wte.weight.T


def make_train_step(shape: GPTShape, lr: float = 1e-3, weight_decay: float = 0.1):
  """(model, step(tokens, targets) -> loss float) with AdamW and clipping at 1.0."""
  torch.manual_seed(0)
  model = GPT(shape)
  decay = [p for p in model.parameters() if p.dim() >= 2]
  no_decay = [p for p in model.parameters() if p.dim() < 2]
  opt = torch.optim.AdamW([{'params': decay, 'weight_decay': weight_decay},
                           {'params': no_decay, 'weight_decay': 0.0}],
                          lr=lr, betas=(0.9, 0.99), foreach=True)

  def step(tokens_BxL, targets_BxL) -> float:
    logits = model(tokens_BxL)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets_BxL.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()

  return model, step
