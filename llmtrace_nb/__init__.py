"""llmtrace_nb — notebook-native observability for LLM code, built on OpenTelemetry.

``%load_ext llmtrace_nb``, then ``%%trace`` a cell; analyse with ``spans_df()``,
``llm_calls_df()``, ``cells_df()`` and ``summary()``.
"""

from __future__ import annotations

from typing import Any

from ._capture.manual import span
from ._notebook import session as _session
from ._notebook.api import (
    cells_df,
    compare,
    disable,
    enable,
    evaluate,
    evaluate_calls,
    evaluations_df,
    explore,
    history,
    llm_calls_df,
    load,
    restore,
    save,
    set_price,
    spans_df,
    status,
    summary,
    view,
)
from ._notebook.cells import BudgetExceeded
from ._version import __version__
from .views import TraceView

__all__ = [
    "BudgetExceeded",
    "TraceView",
    "__version__",
    "cells_df",
    "compare",
    "disable",
    "enable",
    "evaluate",
    "evaluate_calls",
    "evaluations_df",
    "explore",
    "history",
    "llm_calls_df",
    "load",
    "restore",
    "save",
    "set_price",
    "span",
    "spans_df",
    "status",
    "summary",
    "view",
]


def load_ipython_extension(ipython: Any) -> None:
    """What ``%load_ext llmtrace_nb`` runs: :func:`enable`, magics and hooks, a status line.

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell
        The shell loading the extension.

    Returns
    -------
    None

    Examples
    --------
    >>> %load_ext llmtrace_nb  # doctest: +SKIP
    """
    from ._notebook.magics import install
    from ._notebook.status import earlier_line, status_line

    sess = _session.enable()
    install(ipython)
    print(status_line(sess))
    for line in (earlier_line(sess), sess.store_problem and f"llmtrace_nb: {sess.store_problem}"):
        if line:
            print(line)


def unload_ipython_extension(ipython: Any) -> None:
    """What ``%unload_ext llmtrace_nb`` runs: magics and hooks removed, then :func:`disable`.

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell
        The shell unloading the extension.

    Returns
    -------
    None

    Examples
    --------
    >>> %unload_ext llmtrace_nb  # doctest: +SKIP
    """
    from ._notebook.magics import uninstall

    uninstall(ipython)
    _session.disable()


def __getattr__(name: str) -> Any:
    # `llmtrace_nb.demo` works after `import llmtrace_nb`, imported on first use: loading
    # the extension does not pay for the demo server's module
    if name == "demo":
        import importlib

        return importlib.import_module(".demo", __name__)
    raise AttributeError(f"module 'llmtrace_nb' has no attribute {name!r}")


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the prebuilt extension (used by `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "llmtrace_nb"}]
