"""Capture: the span processor that keeps every finished span in the kernel.

This is the first stage of the data flow (capture → normalize → shape → show/ship). It
runs on the span hot path of every instrumented call, so it does as little as possible:
``on_start`` remembers which cell was active, ``on_end`` appends the span's compact
record (``record.py``) to a bounded buffer. Normalization, JSON parsing and pricing all
happen later, when a DataFrame or a view is asked for.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from .._fork import fresh_locks_after_fork
from . import sdk
from .record import (
    CELL,
    ENTRY,
    SPAN_ID,
    TRACE_ID,
    Record,
    columns_of,
    join,
    to_readable,
)
from .sdk import entry_from_fields

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span


DEFAULT_MAX_SPANS = 100_000


def _slack(max_spans: int) -> int:
    """How far the buffer may run past its bound before a writer trims it (one lock per
    that many spans once full, instead of one per span); never visible to readers."""
    return max(1, min(max_spans // 64, 4096))


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
    """A consistent view of the buffer: records numbered from ``first_seq``.

    It holds the buffer's items as copied (``ENTRY`` per record); whole records are
    made only when asked for, since a DataFrame reads columns straight from the items.
    """

    first_seq: int
    items: list[Any]
    #: the number of the oldest record still in the buffer (records may start later)
    oldest_seq: int
    dropped: int
    generation: int
    #: CellRef.seq -> cell, for every cell a record names
    cells: dict[int, CellRef]

    def __len__(self) -> int:
        return len(self.items) // ENTRY

    @property
    def end_seq(self) -> int:
        return self.first_seq + len(self)

    @functools.cached_property
    def records(self) -> list[Record]:
        return join(self.items)

    def columns(self, start: int = 0) -> list[Sequence[Any]]:
        """The records from index ``start`` on, as one sequence per record position."""
        return columns_of(self.items[ENTRY * start:])

    def cell_of(self, record: Record) -> CellRef | None:
        seq = record[CELL]
        return None if seq is None else self.cells.get(seq)

    def spans(self) -> list[tuple[ReadableSpan, CellRef | None]]:
        """The records rebuilt as SDK spans, each with its cell (for files and replay)."""
        return [(to_readable(r), self.cell_of(r)) for r in self.records]


@dataclass(frozen=True)
class Evicted:
    """Records evicted from the buffer, numbered from ``first_seq`` (``take_evicted``)."""

    first_seq: int
    items: list[Any]
    #: CellRef.seq -> spans evicted before any reader took them (not in any total)
    uncounted: Counter[int | None]
    #: CellRef.seq -> spans evicted since the last clear
    by_cell: Counter[int | None]

    def columns(self, start_seq: int) -> list[Sequence[Any]]:
        """The records numbered ``start_seq`` on, one sequence per record position."""
        return columns_of(self.items[ENTRY * max(start_seq - self.first_seq, 0):])

    @property
    def end_seq(self) -> int:
        return self.first_seq + len(self.items) // ENTRY


class SpanCollector(SpanProcessor):
    """Keeps finished spans in a bounded buffer, each with the cell it belongs to.

    The active cell is a plain attribute, not a contextvar: a thread started in a cell
    without propagated context still lands in that cell, because ``on_start`` reads
    whatever cell is running now.
    """

    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS,
                 readers: sdk.Readers | None = None) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans}")
        #: how spans are read (sdk.py): the SDK's fields when the installed SDK was
        #: checked to have them, else its public API
        self.readers = sdk.READERS if readers is None else readers
        if self.readers is not sdk.FIELDS:
            # the fast methods read the fields inline: replaced for this collector
            self.on_start = self._on_start_public  # type: ignore[method-assign]
            self.on_end = self._on_end_public  # type: ignore[method-assign]
        self._lock = threading.Lock()
        fresh_locks_after_fork(self, "_lock")
        # Each record is ENTRY items side by side (record.py says why). on_end adds them
        # in one deque.extend, atomic, without the lock: the lock would cost more than
        # the rest of on_end (~1.5% of a bare span). So the deque has no maxlen (a writer
        # could not count what it evicted) and is trimmed off the old end, under the
        # lock, once it holds `_slack` records more than the bound. Readers only ever
        # see the newest `_max`; the rest count as dropped.
        self._buffer: deque[Any] = deque()
        self._evicted = 0  # records trimmed off the old end since the last clear
        self._max = max_spans
        self._trim_at = ENTRY * (max_spans + _slack(max_spans))  # in items
        # Bumped by clear(): lets DataFrame caches know their rows are gone.
        self._generation = 0
        # span_id -> cell, for spans that are running. Single dict operations are atomic
        # in CPython, so on_start/on_end need no lock for it.
        self._cell_of: dict[int, int] = {}
        self._cells: list[CellRef] = []
        # every cell a record names, by CellRef.seq (records hold the int, not the object)
        self._known_cells: dict[int, CellRef] = {}
        self._active_cell: CellRef | None = None
        # what on_start stamps: the active cell's seq, None outside cells or when off
        self._stamp: int | None = None
        self._enabled = True
        # Records trimmed off and not yet taken by a reader (take_evicted), so the totals
        # of their cells can still count them; at most `_max` records, the older ones
        # only counted per cell (`_uncounted`).
        self._pending: list[Any] = []
        self._uncounted: Counter[int | None] = Counter()
        #: called (without the lock) when evicted records pile up: a reader should take them
        self.on_evicted: Callable[[], None] | None = None
        # records numbered below this were read by snapshot_and_evicted's caller, which
        # counts them itself: evicted, they need not wait in _pending
        self._read_until = 0
        #: CellRef.seq -> how many of its spans were evicted
        self._evicted_by_cell: Counter[int | None] = Counter()

    @property
    def generation(self) -> int:
        """Grows by one each time the buffer is cleared (a reader's cache is then stale)."""
        return self._generation

    # -- SpanProcessor -----------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether spans are collected (``%llmtrace off`` turns it off)."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        self._restamp()

    @property
    def active_cell(self) -> CellRef | None:
        """The cell spans starting now belong to (set while a traced cell runs)."""
        return self._active_cell

    @active_cell.setter
    def active_cell(self, cell: CellRef | None) -> None:
        if cell is not None:
            with self._lock:
                self._known_cells[cell.seq] = cell
        self._active_cell = cell
        self._restamp()

    def _restamp(self) -> None:
        cell = self._active_cell
        self._stamp = cell.seq if cell is not None and self._enabled else None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # one attribute read outside cells: enabled and the cell are folded into _stamp
        stamp = self._stamp
        if stamp is not None:  # the span's id read inline, as sdk.span_id_from_field does
            self._cell_of[span._context[1]] = stamp  # type: ignore[index]

    def on_end(self, span: ReadableSpan) -> None:
        # The hot path: SDK fields read directly (the public properties cost more than
        # the rest of this method), as sdk.py checked at import they can be; the record
        # itself: sdk.entry_from_fields.
        if not self._enabled:
            return
        cell = self._cell_of.pop(span._context[1], None) if self._cell_of else None  # type: ignore[index]
        buffer = self._buffer
        buffer.extend(entry_from_fields(span, cell))
        if len(buffer) > self._trim_at:
            with self._lock:
                self._trim()

    def trace_spans(self, trace_id: int) -> list[ReadableSpan]:
        """The spans of one trace still in the buffer, rebuilt as SDK spans (forwarding a
        trace it held back: a judgement arrived). Off the hot path: a scan of the ids."""
        with self._lock:
            held = list(self._buffer)
        ids = held[TRACE_ID::ENTRY]
        return [to_readable(tuple(held[i * ENTRY:(i + 1) * ENTRY]))
                for i, t in enumerate(ids) if t == trace_id]

    def place(self, span_id: int, cell_seq: int | None) -> None:
        """The span that started with ``span_id`` (and has not ended) belongs to this
        cell, not the one running when it started: a judgement joins the cell of the
        span it judges (None: the cell of its trace)."""
        if cell_seq is None:
            self._cell_of.pop(span_id, None)
        elif self._enabled:
            self._cell_of[span_id] = cell_seq

    # on_start and on_end through the public API (sdk.PUBLIC), when the fields are not
    # to be read: slower, same records

    def _on_start_public(self, span: Span, parent_context: Context | None = None) -> None:
        stamp = self._stamp
        if stamp is not None:
            self._cell_of[self.readers.span_id(span)] = stamp

    def _on_end_public(self, span: ReadableSpan) -> None:
        if not self._enabled:
            return
        cell = self._cell_of.pop(self.readers.span_id(span), None) if self._cell_of else None
        buffer = self._buffer
        buffer.extend(self.readers.entry_of(span, cell))
        if len(buffer) > self._trim_at:
            with self._lock:
                self._trim()

    def add_entries(self, entries: list[tuple[ReadableSpan, CellRef | None]],
                    cells: list[CellRef]) -> int:
        """Add spans read from a file, as if they had been collected (bound included).

        A span is known by its trace and span id: one the buffer holds already (the file
        was loaded before, or saved from this session) is not added again, nor a cell all
        of whose spans were. Returns how many spans were added.
        """
        entry_of = self.readers.entry_of
        return self.add_records([entry_of(span, None if cell is None else cell.seq)
                                 for span, cell in entries], cells)

    def add_records(self, records: list[Record], cells: list[CellRef]) -> int:
        """``add_entries`` for records (CELL: the ``seq`` of one of ``cells``, or None)."""
        with self._lock:
            held = list(self._buffer)
            known = set(zip(held[TRACE_ID::ENTRY], held[SPAN_ID::ENTRY], strict=True))
            del held
            new = [r for r in records if (r[TRACE_ID], r[SPAN_ID]) not in known] \
                if known else records
            used = {r[CELL] for r in new if r[CELL] is not None}
            for cell in cells:
                if cell.seq in used and cell.seq not in self._known_cells:
                    self._cells.append(cell)
                    self._known_cells[cell.seq] = cell
            # one extend of a list from C iterators (no Python code runs inside it), so
            # spans ending on other threads (on_end appends without the lock) land
            # before or after these, never inside one
            self._buffer.extend(itertools.chain.from_iterable(new))
            self._trim()
        return len(new)

    def shutdown(self) -> None:
        self.enabled = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # -- cells -------------------------------------------------------------------------

    def register_cell(self, cell: CellRef) -> None:
        with self._lock:
            self._cells.append(cell)
            self._known_cells[cell.seq] = cell

    def cell(self, seq: int | None) -> CellRef | None:
        """The cell a record's CELL field names."""
        return None if seq is None else self._known_cells.get(seq)

    def running_in(self, cell: CellRef) -> int:
        """How many spans stamped with ``cell`` have started and not ended yet."""
        return sum(1 for seq in list(self._cell_of.values()) if seq == cell.seq)

    def cells(self) -> list[CellRef]:
        with self._lock:
            return list(self._cells)

    # -- reading -----------------------------------------------------------------------

    def snapshot(self, since: int = 0, generation: int | None = None) -> Snapshot:
        """The records from number ``since`` on (all of them after a clear that
        ``generation`` did not see), with what a reader needs to make sense of them."""
        with self._lock:
            return self._snapshot(since, generation)

    def _snapshot(self, since: int, generation: int | None) -> Snapshot:
        """``snapshot``; the caller holds the lock."""
        if generation is not None and generation != self._generation:
            since = 0
        appended, items = self._tail(since)
        oldest = appended - min(appended - self._evicted, self._max)
        return Snapshot(first_seq=appended - len(items) // ENTRY, items=items,
                        oldest_seq=oldest, dropped=oldest, generation=self._generation,
                        cells=dict(self._known_cells))

    @property
    def appended(self) -> int:
        """Spans ever appended since the last clear (a cheap "anything new?" check)."""
        with self._lock:
            return self._evicted + len(self._buffer) // ENTRY

    def records_since(self, seq: int) -> list[Record]:
        """The records appended after the first ``seq`` (those still in the buffer)."""
        with self._lock:
            return join(self._tail(seq)[1])

    def _tail(self, since: int) -> tuple[int, list[Any]]:
        """(records ever appended, the items of the kept ones numbered ``since`` on).

        The caller holds the lock, which keeps trims and clears out but not writers:
        a copy that a writer appended during is taken again (the deque's iterator
        raises, or its length moved).
        """
        buffer = self._buffer
        while True:
            length = len(buffer)
            size = length // ENTRY
            appended = self._evicted + size
            first = appended - min(size, self._max)  # number of the oldest record kept
            count = appended - max(since, first)
            try:
                if count >= size:
                    items = list(buffer)
                else:
                    # walk from the new end: a deque is a linked list of blocks
                    items = list(itertools.islice(reversed(buffer), ENTRY * max(count, 0)))
                    items.reverse()
            except RuntimeError:  # "deque mutated during iteration"
                continue
            if len(buffer) == length:
                return appended, items

    def _trim(self) -> None:
        """Drop the records past the bound off the old end; the caller holds the lock."""
        buffer = self._buffer
        excess = len(buffer) // ENTRY - self._max
        if excess > 0:
            # one popleft per item, called from C: a Python loop costs half as much again
            items = list(itertools.starmap(buffer.popleft, itertools.repeat((), ENTRY * excess)))
            self._evicted += excess
            self._evicted_by_cell.update(items[CELL::ENTRY])
            read = min(max(self._read_until - (self._evicted - excess), 0), excess)
            pending = self._pending
            pending.extend(items[ENTRY * read:] if read else items)
            over = len(pending) // ENTRY - self._max
            if over > 0:
                self._uncounted.update(pending[CELL:ENTRY * over:ENTRY])
                del pending[:ENTRY * over]
            if self.on_evicted is not None and len(pending) // ENTRY >= self._max // 2:
                self.on_evicted()  # wakes a reader's thread: cheap, never blocks

    def snapshot_and_evicted(self, since: int = 0, generation: int | None = None
                             ) -> tuple[Snapshot, Evicted]:
        """``snapshot`` and the records evicted since the last call (those past the bound
        included), taken at one moment: for a reader that keeps totals eviction must not
        lose (nothing evicted between the two can slip through)."""
        with self._lock:
            self._trim()
            items, self._pending = self._pending, []
            uncounted, self._uncounted = self._uncounted, Counter()
            evicted = Evicted(first_seq=self._evicted - len(items) // ENTRY, items=items,
                              uncounted=uncounted, by_cell=Counter(self._evicted_by_cell))
            snap = self._snapshot(since, generation)
            self._read_until = snap.end_seq
            return snap, evicted

    def __len__(self) -> int:
        return min(len(self._buffer) // ENTRY, self._max)

    def __iter__(self) -> Iterator[ReadableSpan]:
        return (span for span, _ in self.snapshot().spans())

    @property
    def dropped(self) -> int:
        """Spans evicted to keep the bound, since the last clear."""
        with self._lock:
            return self._evicted + max(len(self._buffer) // ENTRY - self._max, 0)

    @property
    def max_spans(self) -> int:
        return self._max

    def resize(self, max_spans: int) -> None:
        """Change the bound; shrinking evicts the oldest spans (and counts them)."""
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans}")
        with self._lock:
            # the newest max_spans stay; the rest count as dropped
            self._max = max_spans
            self._trim_at = ENTRY * (max_spans + _slack(max_spans))
            self._trim()

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()
            # A cell still running (`%llmtrace clear` inside a traced cell) stays known.
            self._cells = [c for c in self._cells if c.end_ns is None]
            self._known_cells = {c.seq: c for c in self._cells}
            self._evicted = 0
            self._pending, self._uncounted = [], Counter()
            self._evicted_by_cell = Counter()
            self._read_until = 0
            self._generation += 1
