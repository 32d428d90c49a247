"""Read (layer 2): raw attributes of any GenAI dialect become one set of fields; secrets
are scrubbed; the spans that describe one call are matched.

Internal: the public surface is ``llmtrace_nb``. Layers: docs/ARCHITECTURE.md.
"""
