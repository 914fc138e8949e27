"""PyTorch (eager, CPU) reference implementations for side-by-side benchmarks."""
