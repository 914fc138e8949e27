"""Hugging Face interop: import a model directory as an lm_jax run, export a run back.

  from lm_jax.interop import import_hf, export_hf
  import_hf('path/to/hf_model', 'runs/imported')      # config.json + safetensors -> checkpoint
  export_hf('runs/imported', 'out/hf_model', step=None)  # checkpoint -> config.json + safetensors

Family-agnostic: each family's mapping (`Family.hf`, lm_jax/models/hf_mapping.py)
lives with the family.
"""

from lm_jax.interop.hf_export import export_hf
from lm_jax.interop.hf_import import import_hf

__all__ = ['import_hf', 'export_hf']
