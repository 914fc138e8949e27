"""`lm-jax plan`: choose mesh, remat and microbatches for N devices from memory and time estimates.

shapes.py (model facts without data), candidate.py (a plan and its overrides),
memory.py (per-device bytes), interconnect.py (devices and bandwidths),
cost.py (step time), search.py (enumerate and rank), report.py (text),
command.py (the CLI), xla_memory.py (XLA's own numbers, for validation).
See docs/planner.md.
"""
