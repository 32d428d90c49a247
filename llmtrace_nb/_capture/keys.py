"""Our own span attributes, the ``llmtrace.*`` keys: the one place they are spelled.

Manual spans (capture) and cell spans (the notebook glue) write them, the readers and
the file loader read them back, so they live in the lowest layer that needs them.
tests/test_one_place.py fails on a ``"llmtrace.…"`` string anywhere else in the package.
"""

from __future__ import annotations

#: every key of ours starts with this (``--redact`` lets them through: they hold no content)
PREFIX = "llmtrace."
#: the span's kind, one of ``semconv.KINDS``, as a manual span or a cell span sets it
KIND = "llmtrace.kind"
#: a cell span's execution count and name
CELL_NUMBER = "llmtrace.cell.number"
CELL_NAME = "llmtrace.cell.name"
#: a cell's tags, one attribute each: ``llmtrace.tag.<name>``
TAG_PREFIX = "llmtrace.tag."
#: the attribute keys whose value could not be read, comma-separated (frames, file loader)
UNREADABLE = "llmtrace.unreadable"
