"""Capture (layer 1): spans are kept in the kernel as they end, and nothing else happens
on that hot path. Instrumentation quirks are fixed here, each in one place (compat.py).

Internal: the public surface is ``llmtrace_nb``. Layers: docs/ARCHITECTURE.md.
"""
