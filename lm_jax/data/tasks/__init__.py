"""Tasks: how a batch is made from token windows, host side (NumPy, no JAX).

A task says how many raw tokens one row needs (`window_len`), turns a stack
of windows into a batch dict (`make_batch`) and, without any data, gives the
keys, shapes and dtypes of its batches (`batch_spec`), which is what the
builder needs for init, shardings and ahead-of-time compilation. A family
lists the tasks it trains on (lm_jax/models/registry.py).
"""

from lm_jax.data.tasks.registry import TASK_NAMES, Task, TaskContext, get_task

__all__ = ['TASK_NAMES', 'Task', 'TaskContext', 'get_task']
