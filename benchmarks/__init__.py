"""Benchmarks of beam-currents: `python -m benchmarks.throughput` (see benchmarks/README.md)."""
