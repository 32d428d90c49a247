"""The running session, as the layers below the notebook glue see it.

The glue (``_notebook/session.py``) makes the session and registers it here. Views,
manual spans and the explorer read it through this module, so nothing below the glue
imports the glue (the layers are drawn in docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # types only: this module sits below every layer at run time
    import pandas as pd

    from ._capture.collector import SpanCollector


class Running(Protocol):
    """What the layers below the glue may ask of the running session."""

    capture_content: bool

    @property
    def collector(self) -> SpanCollector: ...

    def spans(self) -> pd.DataFrame:
        """``spans_df()``: every collected span, content shown as the session captures it."""
        ...


_running: Running | None = None


def current() -> Running | None:
    """The session ``%load_ext`` / ``enable()`` made, or None before that."""
    return _running


def register(session: Running | None) -> None:
    global _running
    _running = session
