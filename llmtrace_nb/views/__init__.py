"""Show: every view renders the trace document (see ``llmtrace_nb._shape.document``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._shape.document import MIME_TYPE
from . import html, text


def bundle(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The display bundle of a cell's trace: the document and its two static twins."""
    return {MIME_TYPE: doc, "text/html": html.render(doc), "text/plain": text.summary(doc)}


class TraceView:
    """One cell's trace: displays as the trace view, and offers the other views of it."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return bundle(self.document)

    def __repr__(self) -> str:
        return text.summary(self.document)

    def html(self) -> str:
        """The self-contained static HTML view."""
        return html.render(self.document)

    def widget(self) -> Any:
        """An interactive ipywidgets view, for frontends without the JupyterLab extension."""
        from .widgets import trace_widget

        return trace_widget(self.document)

    def figure(self) -> Any:
        """The waterfall as a plotly figure."""
        from .charts import waterfall

        return waterfall(self.document)
