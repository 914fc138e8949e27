"""Every test sees 8 simulated CPU devices (set before JAX starts its backend)."""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import jax  # noqa: E402  (after XLA_FLAGS on purpose)

jax.config.update('jax_default_matmul_precision', 'highest')
