"""Model families, built by name from the config (a registry, not an if-chain)."""

import flax.linen as nn
import ml_collections

from lm_jax.models.config import ModelConfig, model_config_from
from lm_jax.models.decoder import Decoder

MODEL_FAMILIES = {'decoder': Decoder}


def build_model(model_cfg: ml_collections.ConfigDict, vocab_size: int,
                mesh_cfg: ml_collections.ConfigDict | None = None
                ) -> tuple[nn.Module, ModelConfig]:
  """Returns the linen module for `model.family` and its resolved config
  (pipelined over `mesh_cfg.stage` stages when that is > 1)."""
  cfg = model_config_from(model_cfg, vocab_size, mesh_cfg)
  return MODEL_FAMILIES[model_cfg.family](cfg), cfg
