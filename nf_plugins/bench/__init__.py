"""Side-by-side speed and memory benchmarks of our models against timm's (``tools/benchmark.py``)."""

from .runner import BenchConfig, run_benchmark

__all__ = ["BenchConfig", "run_benchmark"]
