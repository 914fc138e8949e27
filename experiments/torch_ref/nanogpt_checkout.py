"""nanoGPT's own model.py (a checkout the user points at), as a train step for the benchmarks.

bench_vs_torch.py --nanogpt PATH times this instead of experiments/torch_ref/gpt.py:
nanoGPT's GPT with bias=False and dropout 0, its configure_optimizers (AdamW,
decay on 2-D params) and its train.py step (forward with targets, backward,
clip at 1.0, step, zero_grad). Differences from lm_jax's model that stay: nanoGPT's
GELU is the exact (erf) one, lm_jax's bench config uses the tanh one; nanoGPT does
not pad the vocabulary.
"""

import importlib.util
import os

import torch

from experiments.torch_ref.gpt import GPTShape


def load_model_module(path: str):
  """nanoGPT's model.py under `path` (a checkout of github.com/karpathy/nanoGPT)."""
  model_py = os.path.join(path, 'model.py')
  if not os.path.isfile(model_py):
    raise FileNotFoundError(f'--nanogpt {path}: no model.py there; pass the directory of a '
                            'nanoGPT checkout (it holds model.py and train.py)')
  spec = importlib.util.spec_from_file_location('nanogpt_model', model_py)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def make_train_step(shape: GPTShape, path: str, lr: float = 1e-3, weight_decay: float = 0.1):
  """(model, step(tokens, targets) -> loss float), as nanoGPT's train.py runs it on CPU."""
  nanogpt = load_model_module(path)
  torch.manual_seed(0)
  model = nanogpt.GPT(nanogpt.GPTConfig(
      block_size=shape.seq_len, vocab_size=shape.vocab_size, n_layer=shape.num_layers,
      n_head=shape.num_heads, n_embd=shape.d_model, dropout=0.0, bias=False))
  opt = model.configure_optimizers(weight_decay, lr, (0.9, 0.99), 'cpu')

  def step(tokens_BxL, targets_BxL) -> float:
    _, loss = model(tokens_BxL, targets_BxL)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()

  return model, step
