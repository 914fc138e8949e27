"""A transformers GPT-2's weights as lm_jax decoder params (GPT-2 style: learned positions,
LayerNorm, gelu, biases, tied embeddings), for comparisons on the same weights.

Only until lm_jax.interop has its own GPT-2 mapping; experiments and tests use it.
"""

import numpy as np


def lm_jax_params_from_gpt2(hf_model) -> dict:
  """The params tree of lm_jax's decoder holding `hf_model`'s weights (Conv1D is [in, out])."""
  cfg = hf_model.config
  D, N = cfg.n_embd, cfg.n_head
  H = D // N
  sd = {k: v.detach().float().numpy() for k, v in hf_model.state_dict().items()}

  def norm(prefix):
    return {'LayerNorm_0': {'scale': sd[prefix + '.weight'], 'bias': sd[prefix + '.bias']}}

  params = {'embed': {'embedding': sd['transformer.wte.weight']},
            'pos_embed': {'embedding': sd['transformer.wpe.weight']},
            'final_norm': norm('transformer.ln_f')}
  for i in range(cfg.n_layer):
    h = f'transformer.h.{i}.'
    qkv_w, qkv_b = sd[h + 'attn.c_attn.weight'], sd[h + 'attn.c_attn.bias']
    attn = {name: {'kernel': qkv_w[:, j * D:(j + 1) * D].reshape(D, N, H),
                   'bias': qkv_b[j * D:(j + 1) * D].reshape(N, H)}
            for j, name in enumerate(('query', 'key', 'value'))}
    attn['out'] = {'kernel': sd[h + 'attn.c_proj.weight'].reshape(N, H, D),
                   'bias': sd[h + 'attn.c_proj.bias']}
    params[f'layer_{i}'] = {
        'attn': attn, 'attn_norm': norm(h + 'ln_1'), 'mlp_norm': norm(h + 'ln_2'),
        'mlp': {'up': {'kernel': sd[h + 'mlp.c_fc.weight'], 'bias': sd[h + 'mlp.c_fc.bias']},
                'down': {'kernel': sd[h + 'mlp.c_proj.weight'],
                         'bias': sd[h + 'mlp.c_proj.bias']}}}
  return params


def pad_vocab(params: dict, padded_vocab: int) -> dict:
  """The embedding padded with zero rows up to the lm_jax model's padded vocabulary."""
  table = params['embed']['embedding']
  extra = np.zeros((padded_vocab - table.shape[0], table.shape[1]), table.dtype)
  return {**params, 'embed': {'embedding': np.concatenate([table, extra])}}
