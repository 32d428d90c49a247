"""What the public functions do: the session's frames, views, files and prices.

``llmtrace_nb/__init__.py`` re-exports these; the magics call them too, so both paths
share one implementation and nothing imports the package root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .._shape import frames as _frames
from ..views import TraceView
from . import session as _session
from .status import status_text


def enable(*, max_spans: int | None = None, capture_content: bool | None = None,
           auto: bool | None = None,
           forward: str | Mapping[str, Any] | bool | None = None) -> None:
    """Start collecting spans in this process (what ``%load_ext`` does, without IPython).

    Idempotent; a second call changes only the options it is given.

    Parameters
    ----------
    max_spans
        Bound of the span buffer (default 100,000); the oldest spans are evicted past it.
    capture_content
        Record prompt and completion text (default: on, unless
        ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` or
        ``TRACELOOP_TRACE_CONTENT`` turns it off).
    auto
        Trace every cell without ``%%trace``.
    forward
        Forward spans over OTLP: a collector URL, or a dict of ``url`` and the
        ``%llmtrace forward`` options (``protocol``, ``headers``, ``only``, ``redact``),
        or False to stop. Without it, the ``OTEL_EXPORTER_OTLP_*`` variables decide.

    Examples
    --------
    >>> import llmtrace_nb
    >>> llmtrace_nb.enable(max_spans=10_000, forward="http://localhost:4318")  # doctest: +SKIP
    """
    _session.enable(max_spans=max_spans, capture_content=capture_content, auto=auto,
                    forward=forward)


def disable() -> None:
    """Stop collecting and turn off the instrumentations llmtrace_nb turned on."""
    _session.disable()


def _source() -> _session.Session:
    sess = _session.current()
    if sess is None:
        raise RuntimeError("llmtrace_nb has collected nothing: run `%load_ext llmtrace_nb` "
                           "or `llmtrace_nb.enable()` first")
    return sess


def spans_df() -> pd.DataFrame:
    """One row per collected span (columns as documented in README)."""
    return _source().spans()


def llm_calls_df() -> pd.DataFrame:
    """The rows of :func:`spans_df` whose kind is ``llm`` or ``embedding``."""
    return _frames.llm_calls(spans_df())


def cells_df() -> pd.DataFrame:
    """One row per traced cell with its totals."""
    sess = _source()
    return _frames.cells(spans_df(), sess.collector.cells(), sess.frames.evicted())


def summary(by: str | Sequence[str] = "model") -> pd.DataFrame:
    """Calls, errors, tokens, cost, latency p50/p95, TTFT p50 and tokens/s per group."""
    return _frames.summary(llm_calls_df(), by=by)


def view(cell: int | str | None = None) -> TraceView:
    """The trace view of a traced cell: the last one, or the one with this number or name.

    Display it, or call ``.widget()``, ``.figure()`` or ``.html()`` on it.
    """
    from .cells import cell_document

    sess = _source()
    cells = [c for c in sess.collector.cells() if c.end_ns is not None]
    if cell is not None:
        cells = [c for c in cells if c.number == cell or c.name == cell]
    if not cells:
        raise LookupError(f"no traced cell {cell!r}" if cell is not None else
                          "no traced cell yet: run a cell with %%trace first")
    return TraceView(cell_document(sess, cells[-1]))


def save(path: str | os.PathLike[str]) -> int:
    """Write the session's spans to ``path`` as OTLP JSON lines; returns how many."""
    from .._ship import files

    sess = _source()
    # With content capture off, no prompt or completion text may reach a file either.
    return files.save(path, sess.collector.snapshot().spans(),
                      redact="none" if sess.capture_content else "drop")


def load(path: str | os.PathLike[str]) -> int:
    """Read spans saved with :func:`save` (or by a Collector's file exporter) into the
    session, so the DataFrames and views include them; returns how many were added.

    A span the session holds already (same trace and span id: the file was loaded
    before, or saved from this session) is not added again. Works in a fresh kernel (it
    enables llmtrace_nb if needed). A bad file raises ``TraceFileError`` naming the line,
    and then nothing is loaded.
    """
    return load_counted(path)[0]


def load_counted(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(spans added, spans of the file already held)."""
    from .._ship import files

    loaded = files.load(path)
    sess = _session.current() or _session.enable()
    added = sess.collector.add_entries(loaded.entries, loaded.cells)
    return added, len(loaded.entries) - added


def explore(source: Any = None, *, auto_refresh: bool = False, max_rows: int = 200) -> Any:
    """A dashboard over the collected spans: filters, linked charts, a table, span detail.

    ``source`` defaults to the live session; a DataFrame of spans works too.
    ``auto_refresh`` polls for new spans twice a second until the dashboard is closed.
    Display the returned widget; it has ``.refresh()`` and ``.close()``.
    """
    # imported here: plotly and ipywidgets are only paid for by those who explore
    from ..views.widgets import explore as _explore

    return _explore(source, auto_refresh=auto_refresh, max_rows=max_rows)


def set_price(model: str, input_per_mtok: float, output_per_mtok: float,
              cache_read_per_mtok: float | None = None,
              cache_write_per_mtok: float | None = None) -> None:
    """Override the price of ``model`` in USD per million tokens (cache reads and writes
    default to the input price)."""
    _source().prices.set_price(model, input_per_mtok, output_per_mtok, cache_read_per_mtok,
                               cache_write_per_mtok)


def status() -> str:
    """What ``%llmtrace status`` prints."""
    return status_text(_source())


