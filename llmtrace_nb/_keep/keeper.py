"""Keep: one session's link to the store — where it is, who is writing, what came before.

``Keeper`` opens the store, registers this kernel's session (its start, the kernel's id,
the notebook's path when Jupyter says it), drops what retention says is too old or too
much, and runs the background writer. The notebook layer asks it what earlier sessions
of this notebook left, to restore them, and for the history across sessions.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._capture.record import SPAN_ID, TRACE_ID, to_readable
from .restore import Restored, read_records, restore
from .store import SessionInfo, Store
from .writer import StoreWriter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from .._capture.collector import SpanCollector

#: the environment variable naming the store's file, or ``off``
STORE_ENV = "LLMTRACE_NB_STORE"
#: retention: sessions last written longer ago than this are dropped …
MAX_AGE_DAYS = 30
#: … and then the oldest until the stored spans take at most this much
MAX_BYTES = 1 << 30
OFF = ("off", "false", "0", "no", "none")


def default_path() -> Path:
    """``$XDG_DATA_HOME/llmtrace_nb/spans.sqlite`` (``~/.local/share`` without it)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "share")
    return Path(base) / "llmtrace_nb" / "spans.sqlite"


def configured_path(store: Any = None) -> Path | None:
    """Where the store goes: ``store`` if given (a path, or False / ``"off"``), else
    ``LLMTRACE_NB_STORE`` (a path or ``off``), else :func:`default_path`. None: off."""
    if store is None:
        store = os.environ.get(STORE_ENV) or None
        if store is None:
            return default_path()
    if store is False or (isinstance(store, str) and store.strip().lower() in OFF):
        return None
    if store is True:
        return default_path()
    if not isinstance(store, str | os.PathLike):
        raise TypeError(f"store must be a path, True or False/'off', got {store!r}")
    return Path(store).expanduser()


@dataclass(frozen=True)
class Identity:
    started_ns: int
    kernel_id: str | None
    notebook: str | None


def identity() -> Identity:
    """This kernel: its id (from ipykernel's connection file) and the notebook it runs
    (Jupyter Server sets ``JPY_SESSION_NAME`` for the kernels it starts; VS Code puts
    ``__session__`` in the namespace)."""
    kernel_id = None
    ipykernel = sys.modules.get("ipykernel")
    if ipykernel is not None:
        try:
            name = Path(ipykernel.get_connection_file()).stem  # kernel-<id>
            kernel_id = name.removeprefix("kernel-") or None
        except Exception:  # not in a kernel (IPython in a terminal, tests)
            kernel_id = None
    notebook = os.environ.get("JPY_SESSION_NAME") or None
    if notebook is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        value = getattr(shell, "user_ns", {}).get("__session__") if shell else None
        notebook = value if isinstance(value, str) and value else None
    return Identity(time.time_ns(), kernel_id, notebook)


class Keeper:
    """The store at ``path``, this session in it and its writer (``Store`` raises
    ``OSError``/``StoreError`` when the location cannot be used)."""

    def __init__(self, path: Path, collector: SpanCollector, content: Callable[[], bool],
                 who: Identity | None = None) -> None:
        self.path = path
        self.who = who or identity()
        self.store = Store(path)
        self.pruned = self.store.prune(MAX_AGE_DAYS * 86_400, MAX_BYTES)
        self.session = self.store.begin_session(self.who.started_ns, self.who.kernel_id,
                                                self.who.notebook)
        self.collector = collector
        self.writer = StoreWriter(collector, self.store, self.session, content=content)
        atexit.register(self._at_exit)  # the last interval's spans, when the kernel exits

    def earlier(self) -> list[SessionInfo]:
        """Earlier sessions of this notebook that kept spans (none when it is unknown)."""
        if self.who.notebook is None:
            return []
        return [s for s in self.store.sessions(self.who.notebook)
                if s.id != self.session and s.spans]

    def restore(self, sessions: list[int]) -> Restored:
        self.writer.flush()
        return restore(self.collector, self.store, sessions,
                       before_add=lambda records: self.writer.skip(r[SPAN_ID] for r in records))

    def trace_spans(self, trace_id: int) -> list[ReadableSpan]:
        """This session's stored spans of one trace, as SDK spans: forwarding a trace it
        held back, whose spans have left the collector's buffer since. A scan of the
        session's chunks, done only then."""
        self.writer.flush()
        records, _, _ = read_records(self.store, [self.session])
        return [to_readable(r) for r in records if r[TRACE_ID] == trace_id]

    def _at_exit(self) -> None:
        """The last flush, and no more: closing the connection would checkpoint the
        write-ahead log into the file (and sync it) while the process waits to exit; the
        next open does that instead, as after ``kill -9``."""
        if not self.writer.forked:
            self.writer.close()

    def close(self) -> None:
        atexit.unregister(self._at_exit)
        if self.writer.forked:  # the parent's store and connection: the parent closes them
            return
        self.writer.close()
        self.store.close()
