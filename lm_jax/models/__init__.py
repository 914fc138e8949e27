"""Model families (lm_jax/models/registry.py) and the layers they share.

  registry.py     one `Family` entry per family; the only place a family is chosen by name
  decoder/        decoder-only Transformer (GPT-2 / Llama styles)
  encdec/         encoder-decoder Transformer (T5 v1.0 / v1.1)
  rnn/            LSTM / GRU / tanh RNN LMs;  cnn/  gated convolutional LM (Dauphin et al.)
  lm_head.py      token embedding and LM head of the families without attention
  attention.py    attention (self / cross) taking an AttentionMask (masks.py)
  layers.py       norms, MLPs, dense maps;  positions.py  RoPE;  pipeline.py  GPipe stages
"""


def build_model(model_cfg, vocab_size: int, mesh_cfg=None):
  """(linen module, resolved model dataclass) of `model_cfg.family` (see the registry)."""
  from lm_jax.models.registry import get_family  # pylint: disable=g-import-not-at-top
  return get_family(model_cfg.family).build(model_cfg, vocab_size, mesh_cfg)
