"""Capture: the span processor that keeps every finished span in the kernel.

This is the first stage of the data flow (capture → normalize → shape → show/ship). It
runs on the span hot path of every instrumented call, so it does as little as possible:
``on_start`` remembers which cell was active, ``on_end`` appends the span to a bounded
buffer. Conversion, JSON parsing and pricing all happen later, when a DataFrame or a
view is asked for.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span

DEFAULT_MAX_SPANS = 100_000


@dataclass(eq=False)
class CellRef:
    """One traced cell: what its spans are attributed to.

    Identity matters, not value: spans hold a reference to the very object of their cell,
    so two runs of the same execution count (``%%trace`` run twice with ``run_cell``) stay
    apart.
    """

    number: int | None
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    #: the trace id of the cell's root span, when the cell has one (``%%trace``); cells
    #: traced by auto mode have no root span.
    trace_id: int | None = None
    root_span_id: int | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    seq: int = field(default_factory=itertools.count().__next__)


@dataclass(frozen=True)
class Snapshot:
    """A consistent view of the buffer: entries numbered from ``first_seq``."""

    first_seq: int
    entries: list[tuple[ReadableSpan, CellRef | None]]
    dropped: int
    generation: int

    @property
    def end_seq(self) -> int:
        return self.first_seq + len(self.entries)


class SpanCollector(SpanProcessor):
    """Keeps finished spans in a bounded buffer, each with the cell it belongs to.

    The active cell is a plain attribute, not a contextvar: a thread started in a cell
    without propagated context still lands in that cell, because ``on_start`` reads
    whatever cell is running now.
    """

    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans}")
        self._lock = threading.Lock()
        self._buffer: deque[tuple[ReadableSpan, CellRef | None]] = deque()
        self._max_spans = max_spans
        self._appended = 0  # spans ever appended since the last clear
        self._dropped = 0
        # Bumped by clear(): lets DataFrame caches know their rows are gone.
        self._generation = 0
        # span_id -> cell, for spans that are running. Single dict operations are atomic
        # in CPython, so on_start/on_end need no lock for it.
        self._cell_of: dict[int, CellRef] = {}
        self._cells: list[CellRef] = []
        self.active_cell: CellRef | None = None
        self.enabled = True

    # -- SpanProcessor -----------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        cell = self.active_cell
        if cell is not None and self.enabled:
            self._cell_of[span.context.span_id] = cell

    def on_end(self, span: ReadableSpan) -> None:
        if not self.enabled:
            return
        cell = self._cell_of.pop(span.context.span_id, None) if self._cell_of else None
        with self._lock:
            if len(self._buffer) >= self._max_spans:
                self._buffer.popleft()
                self._dropped += 1
            self._buffer.append((span, cell))
            self._appended += 1

    def add_entries(self, entries: list[tuple[ReadableSpan, CellRef | None]],
                    cells: list[CellRef]) -> None:
        """Add spans read from a file, as if they had been collected (bound included)."""
        with self._lock:
            self._cells.extend(cells)
            for entry in entries:
                if len(self._buffer) >= self._max_spans:
                    self._buffer.popleft()
                    self._dropped += 1
                self._buffer.append(entry)
                self._appended += 1

    def shutdown(self) -> None:
        self.enabled = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- cells -------------------------------------------------------------------------

    def register_cell(self, cell: CellRef) -> None:
        with self._lock:
            self._cells.append(cell)

    def running_in(self, cell: CellRef) -> int:
        """How many spans stamped with ``cell`` have started and not ended yet."""
        return sum(1 for c in list(self._cell_of.values()) if c is cell)

    def cells(self) -> list[CellRef]:
        with self._lock:
            return list(self._cells)

    # -- reading -----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            entries = list(self._buffer)
            return Snapshot(
                first_seq=self._appended - len(entries),
                entries=entries,
                dropped=self._dropped,
                generation=self._generation,
            )

    @property
    def appended(self) -> int:
        """Spans ever appended since the last clear (a cheap "anything new?" check)."""
        return self._appended

    def entries_since(self, seq: int) -> list[tuple[ReadableSpan, CellRef | None]]:
        """The entries appended after the first ``seq`` (those still in the buffer)."""
        with self._lock:
            first = self._appended - len(self._buffer)
            skip = max(seq - first, 0)
            if skip >= len(self._buffer):
                return []
            return list(itertools.islice(self._buffer, skip, None))

    def __len__(self) -> int:
        return len(self._buffer)

    def __iter__(self) -> Iterator[ReadableSpan]:
        return (span for span, _ in self.snapshot().entries)

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def max_spans(self) -> int:
        return self._max_spans

    def resize(self, max_spans: int) -> None:
        """Change the bound; shrinking evicts the oldest spans (and counts them)."""
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans}")
        with self._lock:
            self._max_spans = max_spans
            while len(self._buffer) > max_spans:
                self._buffer.popleft()
                self._dropped += 1

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()
            # A cell still running (`%llmtrace clear` inside a traced cell) stays known.
            self._cells = [c for c in self._cells if c.end_ns is None]
            self._appended = 0
            self._dropped = 0
            self._generation += 1
