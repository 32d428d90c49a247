"""Shape (layer 3): the DataFrames, prices and totals, and the trace document every
view of a cell is drawn from.

Internal: the public surface is ``llmtrace_nb``. Layers: docs/ARCHITECTURE.md.
"""
