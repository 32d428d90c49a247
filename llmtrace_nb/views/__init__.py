"""Show: every view renders the trace document (see ``llmtrace_nb.document``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..document import MIME_TYPE
from . import html, text


def bundle(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The display bundle of a cell's trace: the document and its two static twins."""
    return {MIME_TYPE: doc, "text/html": html.render(doc), "text/plain": text.summary(doc)}
