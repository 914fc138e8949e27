"""Which params weight decay (and optimizer.l1 / l2) must and must not touch,
written out by hand for the tiny test models (tests/sharded_setup.py): kernels
and embeddings decay; biases, norm scales and norm biases do not, whatever
their rank. `{L}` stands for a layer's prefix in each layer layout."""

GPT_DECAYED = ['embed/embedding', 'pos_embed/embedding'] + [
    '{L}/attn/query/kernel', '{L}/attn/key/kernel', '{L}/attn/value/kernel',
    '{L}/attn/out/kernel', '{L}/mlp/up/kernel', '{L}/mlp/down/kernel']
GPT_NOT_DECAYED = ['final_norm/LayerNorm_0/scale', 'final_norm/LayerNorm_0/bias'] + [
    '{L}/attn/query/bias', '{L}/attn/key/bias', '{L}/attn/value/bias',
    '{L}/attn/out/bias', '{L}/mlp/up/bias', '{L}/mlp/down/bias',
    '{L}/attn_norm/LayerNorm_0/scale', '{L}/attn_norm/LayerNorm_0/bias',
    '{L}/mlp_norm/LayerNorm_0/scale', '{L}/mlp_norm/LayerNorm_0/bias']
LLAMA_DECAYED = ['embed/embedding', 'lm_head/kernel'] + [
    '{L}/attn/query/kernel', '{L}/attn/key/kernel', '{L}/attn/value/kernel',
    '{L}/attn/out/kernel', '{L}/mlp/gate/kernel', '{L}/mlp/up/kernel',
    '{L}/mlp/down/kernel']
LLAMA_NOT_DECAYED = ['final_norm/RMSNorm_0/scale', '{L}/attn_norm/RMSNorm_0/scale',
                     '{L}/mlp_norm/RMSNorm_0/scale']
# style (tiny_model_cfg) -> (decayed, not decayed)
EXPECTED = {'gpt': (GPT_DECAYED, GPT_NOT_DECAYED),
            'llama': (LLAMA_DECAYED, LLAMA_NOT_DECAYED)}
# layout -> (model.scan_layers, mesh.stage, the layer prefixes of 2 layers)
LAYOUTS = {'unrolled': (False, 1, ['layer_0', 'layer_1']),
           'scanned': (True, 1, ['layers']),
           'pipelined': (False, 2, ['pipeline/stages/layers'])}


def path_str(path) -> str:
  """'layer_0/attn/query/kernel' from a jax key path of dict keys."""
  return '/'.join(str(k.key) for k in path)


def decayed_paths(style: str, layout: str) -> set[str]:
  return {p.format(L=pre) for p in EXPECTED[style][0] for pre in LAYOUTS[layout][2]}


def undecayed_paths(style: str, layout: str) -> set[str]:
  return {p.format(L=pre) for p in EXPECTED[style][1] for pre in LAYOUTS[layout][2]}
