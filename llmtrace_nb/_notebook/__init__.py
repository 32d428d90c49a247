"""The notebook glue (layer 5): the session, traced cells, the magics, the public
functions. The only layer that knows about IPython and wires the others together.

Internal: the public surface is ``llmtrace_nb``. Layers: docs/ARCHITECTURE.md.
"""
