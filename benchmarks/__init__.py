"""Benchmarks for the performance targets in docs/ARCHITECTURE.md; run with `make bench`."""
