"""The PyTorch side-by-side benchmark compares like with like, and its lockstep protocol works.

- experiments/torch_ref/gpt.py is the same GPT as lm_jax's bench config: with lm_jax's
  initial weights copied in, PyTorch's loss on a batch equals the loss of lm_jax's
  first train step (which reports the loss before its update), on weights perturbed
  far from the init.
- experiments/step_server.py: a server answers windows in order, and a server that
  dies shows its stderr instead of hanging the driver.
"""

import os
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from experiments.step_server import StepServer  # noqa: E402
from lm_jax.build import build  # noqa: E402
from lm_jax.config import parse_cli_config  # noqa: E402
from lm_jax.train.step import jit_train_step  # noqa: E402

LAYERS, HEADS, D, SEQ, BATCH, VOCAB = 2, 2, 32, 16, 3, 65


def _lm_jax_first_loss_and_params(tokens_Bx1pL):
  config, _ = parse_cli_config([
      '--config', os.path.join(ROOT, 'experiments', 'bench_nanogpt_cpu.py'),
      '--config.mesh.data=1', f'--config.model.num_layers={LAYERS}',
      f'--config.model.num_heads={HEADS}', f'--config.model.d_model={D}',
      f'--config.model.max_len={SEQ}', f'--config.data.seq_len={SEQ}',
      f'--config.train.global_batch_size={BATCH}', f'--config.model.vocab_size={VOCAB}'])
  built = build(config, VOCAB, jax.devices()[:1])
  state = built.init_state()
  # Weights well away from the small init, so a wrongly mapped one shows in the loss.
  rng = np.random.default_rng(1)
  params = jax.tree.map(lambda w: np.asarray(w) + rng.normal(0, 0.3, w.shape).astype(w.dtype),
                        jax.device_get(state.params))
  state = state.replace(params=jax.device_put(params, built.state_shardings.params))
  step = jit_train_step(built.objective, 1, built.schedule, built.state_shardings,
                        built.batch_sharding, built.replicated)
  batch = {'inputs': tokens_Bx1pL[:, :-1].astype(np.int32),
           'targets': tokens_Bx1pL[:, 1:].astype(np.int32),
           'weights': np.ones((BATCH, SEQ), np.float32)}
  with jax.set_mesh(built.mesh):
    _, metrics = step(state, batch)
  return float(metrics['loss']), params


def test_torch_reference_is_the_same_gpt():
  torch = pytest.importorskip('torch')
  from experiments.torch_ref.gpt import GPTShape, make_train_step

  tokens = np.random.default_rng(0).integers(0, VOCAB, (BATCH, SEQ + 1))
  jax_loss, p = _lm_jax_first_loss_and_params(tokens)
  model, step = make_train_step(GPTShape(LAYERS, HEADS, D, SEQ, BATCH, VOCAB))

  def t(a):
    return torch.tensor(np.asarray(a, np.float32))

  with torch.no_grad():
    model.wte.weight.copy_(t(p['embed']['embedding'][:VOCAB]))  # lm_jax pads rows to 128
    model.wpe.weight.copy_(t(p['pos_embed']['embedding']))
    model.ln_f.weight.copy_(t(p['final_norm']['LayerNorm_0']['scale']))
    for i, block in enumerate(model.blocks):
      layer = p[f'layer_{i}']
      attn = layer['attn']
      qkv_DxD3 = np.concatenate([attn[n]['kernel'].reshape(D, D)
                                 for n in ('query', 'key', 'value')], axis=1)
      block.qkv.weight.copy_(t(qkv_DxD3.T))  # torch Linear: y = x W^T
      block.proj.weight.copy_(t(attn['out']['kernel'].reshape(D, D).T))
      block.ln_1.weight.copy_(t(layer['attn_norm']['LayerNorm_0']['scale']))
      block.ln_2.weight.copy_(t(layer['mlp_norm']['LayerNorm_0']['scale']))
      block.up.weight.copy_(t(layer['mlp']['up']['kernel'].T))
      block.down.weight.copy_(t(layer['mlp']['down']['kernel'].T))
  assert sum(v.size for v in jax.tree.leaves(p)) - (128 - VOCAB) * D == sum(
      w.numel() for w in model.parameters())  # nothing left over on either side

  x = torch.from_numpy(tokens[:, :-1].copy())
  y = torch.from_numpy(tokens[:, 1:].copy())
  torch_loss = step(x, y)
  assert abs(jax_loss - np.log(VOCAB)) > 0.5  # not the near-uniform loss of any small init
  assert abs(torch_loss - jax_loss) < 1e-5 * abs(jax_loss), (torch_loss, jax_loss)


_SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from experiments.step_server import serve
calls = []
def run_steps(n):
  if n == 99:
    sys.stderr.write('asked for 99 steps\\n'); sys.exit(3)
  calls.append(n); time.sleep(0.01 * n)
serve(run_steps, {{'name': 'fake'}})
"""


def test_step_server_answers_windows_and_reports_a_dead_server():
  server = StepServer([sys.executable, '-c', _SERVER.format(root=ROOT)])
  assert server.info == {'ready': True, 'name': 'fake'}
  one, five = server.time(1), server.time(5)
  assert 0.01 <= one < five and five >= 0.05
  with pytest.raises(RuntimeError, match='asked for 99 steps'):
    server.time(99)
  server.close()


_STUB_NANOGPT = """
import dataclasses, torch
@dataclasses.dataclass
class GPTConfig:
  block_size: int; vocab_size: int; n_layer: int; n_head: int; n_embd: int
  dropout: float; bias: bool
class GPT(torch.nn.Module):
  def __init__(self, config):
    super().__init__()
    self.config = config
    self.wte = torch.nn.Embedding(config.vocab_size, config.n_embd)
  def forward(self, idx, targets):
    logits = self.wte(idx) @ self.wte.weight.T
    return logits, torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
  def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
    return torch.optim.AdamW(self.parameters(), lr=learning_rate, betas=betas,
                             weight_decay=weight_decay)
"""


def test_nanogpt_checkout_is_built_from_its_config_and_trained(tmp_path):
  pytest.importorskip('torch')
  from experiments.torch_ref.gpt import GPTShape
  from experiments.torch_ref.nanogpt_checkout import make_train_step
  with pytest.raises(FileNotFoundError, match='no model.py there'):
    make_train_step(GPTShape(LAYERS, HEADS, D, SEQ, BATCH, VOCAB), str(tmp_path))
  (tmp_path / 'model.py').write_text(_STUB_NANOGPT)
  model, step = make_train_step(GPTShape(LAYERS, HEADS, D, SEQ, BATCH, VOCAB), str(tmp_path))
  assert (model.config.n_layer, model.config.n_head, model.config.n_embd,
          model.config.block_size, model.config.bias) == (LAYERS, HEADS, D, SEQ, False)
  import torch
  tokens = torch.from_numpy(np.random.default_rng(0).integers(0, VOCAB, (BATCH, SEQ + 1)))
  losses = [step(tokens[:, :-1], tokens[:, 1:]) for _ in range(3)]
  assert losses[2] < losses[0]  # the optimizer it configured takes steps
