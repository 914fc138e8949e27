"""Sweeps: many `lm-jax train` runs of one config with different overrides (see spec.py)."""

from lm_jax.sweep.spec import LogUniform, Sweep, Uniform, grid, sample

__all__ = ['LogUniform', 'Sweep', 'Uniform', 'grid', 'sample']
