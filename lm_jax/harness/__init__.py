"""lm-evaluation-harness on lm_jax checkpoints (`lm-eval` is an optional extra)."""
