"""Benchmarks: ``python -m benchmarks.fire``."""
