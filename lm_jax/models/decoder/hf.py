"""The decoder family's Hugging Face mapping (`Family.hf`): GPT-2 and Llama.

config.json's model_type picks the architecture on import; on export (and
when reading weights into a resolved config) the decoder's position encoding
does: learned positions are GPT-2's layout, RoPE is Llama's.
"""

from lm_jax.errors import ConfigError
from lm_jax.models.decoder import hf_gpt2, hf_llama
from lm_jax.models.hf_mapping import HFMapping

_ARCHS = {hf_gpt2.MODEL_TYPE: hf_gpt2, hf_llama.MODEL_TYPE: hf_llama}


def _arch(model_cfg):
  return hf_gpt2 if model_cfg.position == 'learned' else hf_llama


def config_from_hf(hf_config: dict) -> dict:
  """lm_jax config keys of a GPT-2 or Llama config.json."""
  model_type = hf_config.get('model_type')
  if model_type not in _ARCHS:
    raise ConfigError(f'config.json model_type={model_type!r}: the decoder reads '
                      f'{", ".join(map(repr, _ARCHS))}')
  return _ARCHS[model_type].config_from_hf(hf_config)


def config_to_hf(config, model_cfg) -> dict:
  """config.json of the decoder: GPT-2 (learned positions) or Llama (RoPE)."""
  del config
  return _arch(model_cfg).config_to_hf(model_cfg)


def params_from_hf(read, names, model_cfg):
  """(lm_jax param path, array) pairs of the architecture the config's layout is."""
  return _arch(model_cfg).params_from_hf(read, names, model_cfg)


def params_to_hf(params, model_cfg):
  """(HF tensor name, array) pairs of the architecture the config's layout is."""
  return _arch(model_cfg).params_to_hf(params, model_cfg)


MAPPING = HFMapping(
    model_types=tuple(_ARCHS),
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    params_from_hf=params_from_hf,
    params_to_hf=params_to_hf,
    # A tied model's lm_head.weight is its embedding again (older saves kept it).
    ignored_hf_names=hf_gpt2.IGNORED + hf_llama.IGNORED + ('lm_head.weight',),
)
