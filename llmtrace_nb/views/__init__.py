"""Show: every view renders the trace document (see ``llmtrace_nb._shape.document``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._shape.document import MIME_TYPE
from . import html, text

if TYPE_CHECKING:  # plotly and ipywidgets are imported only when a view needs them
    import plotly.graph_objects as go

    from .widgets import TraceWidget


def bundle(doc: Mapping[str, Any], output: str = "compact") -> dict[str, Any]:
    """The display bundle of a cell's trace: the document and its two static twins
    (``output``: see ``html.render``)."""
    return {MIME_TYPE: doc, "text/html": html.render(doc, output),
            "text/plain": text.summary(doc)}


class TraceView:
    """One cell's trace: displays as the trace view, and offers the other views of it.

    Displayed, it is one bundle of three representations (README, "The trace view"):
    the trace document for the JupyterLab extension, a static HTML twin and a text
    summary. ``llmtrace_nb.view()`` makes one.

    Parameters
    ----------
    document : Mapping
        The cell's trace document (schema in ``llmtrace_nb/_shape/document.py``),
        kept as :attr:`document`.
    output : {"compact", "full"}
        How much detail the static HTML twin carries (``%llmtrace output``): "compact"
        details the first calls and every error, "full" every span.

    Examples
    --------
    >>> tv = llmtrace_nb.view()  # doctest: +SKIP
    >>> tv  # doctest: +SKIP
    >>> tv.document["totals"]["cost_usd"]  # doctest: +SKIP
    """

    def __init__(self, document: Mapping[str, Any], output: str = "compact") -> None:
        self.document = document
        self.output = output

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return bundle(self.document, self.output)

    def __repr__(self) -> str:
        return text.summary(self.document)

    def html(self) -> str:
        """The self-contained static HTML view (inline CSS, no script).

        Returns
        -------
        str
            The same HTML the ``text/html`` representation carries: a table of the spans
            that reads even with its styles stripped (GitHub), rows that expand to the
            span's detail, and every text from a span escaped.

        Examples
        --------
        >>> from pathlib import Path
        >>> Path("trace.html").write_text(llmtrace_nb.view().html())  # doctest: +SKIP
        """
        return html.render(self.document, self.output)

    def widget(self) -> TraceWidget:
        """An interactive ipywidgets view, for frontends without the JupyterLab extension.

        Returns
        -------
        TraceWidget
            An ipywidgets ``VBox``: a header, the waterfall (click a bar), a span selector
            and the selected span's detail; ``.select(i)`` selects by index or span id.
            Widget outputs are not saved with the notebook.

        Examples
        --------
        >>> llmtrace_nb.view().widget()  # doctest: +SKIP
        """
        from .widgets import trace_widget

        return trace_widget(self.document)

    def figure(self) -> go.Figure:
        """The waterfall as a plotly figure (``charts.waterfall`` of this trace).

        Returns
        -------
        plotly.graph_objects.Figure
            One bar per span on a time axis (ms from the cell start), in tree order,
            colored by kind.

        Examples
        --------
        >>> llmtrace_nb.view().figure().write_image("trace.png")  # doctest: +SKIP
        """
        from .charts import waterfall

        return waterfall(self.document)
