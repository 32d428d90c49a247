"""Capture: the compact form a finished span is kept in.

The buffer holds each record as its ``ENTRY`` values side by side, flat in one deque
(the positions are named below): ids, name, kind, times, status, events, cell, flags,
the attribute dict, the Resource and the InstrumentationScope. Readers that want whole
records get tuples (``join``) with the same positions; ``to_readable`` rebuilds an SDK
span only when one leaves as a span (a file, a replay). Records are read from spans in
``sdk.py`` (``READERS.entry_of``), the one place that knows the SDK's private fields. Why
a flat record and not the SDK's ``ReadableSpan`` (or a tuple, a NamedTuple, a slotted
class): docs/ARCHITECTURE.md, "Decisions and why".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

Record = tuple[Any, ...]
#: one span event: (name, timestamp in ns, attributes dict)
EventRecord = tuple[str, int, Mapping[str, Any]]

# positions in a record
TRACE_ID = 0  # int
SPAN_ID = 1  # int
PARENT_ID = 2  # int | None
NAME = 3  # str
KIND = 4  # int, SpanKind value
START = 5  # int ns | None
END = 6  # int ns | None
STATUS = 7  # int, StatusCode value
STATUS_MESSAGE = 8  # str | None
EVENTS = 9  # tuple of EventRecord
CELL = 10  # CellRef.seq of the cell the span belongs to, or None
FLAGS = 11  # int trace flags
RARE = 12  # None, or ((name, value), ...) of what most spans lack (see _rare)
ATTRS = 13  # the attribute dict (the ended span's own: it can no longer change)
RESOURCE = 14  # the span's Resource (one object shared by the provider's spans)
SCOPE = 15  # its InstrumentationScope (shared by the tracer's spans)
WIDTH = 16  # positions in a record
ENTRY = WIDTH  # buffer items per record

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NO_STATE = DEFAULT_TRACE_STATE


def _rare(context: Any, parent: Any, links: Any, dropped: tuple[int, int, int]
          ) -> tuple[tuple[str, Any], ...] | None:
    """What only some spans have, kept so a rebuilt span equals the original (from the
    span's context, parent, links and dropped counts, however sdk.py read them)."""
    rare: list[tuple[str, Any]] = []
    state = context.trace_state
    if state is not None and state is not _NO_STATE and len(state):
        rare.append(("trace_state", tuple(state.items())))
    if context.is_remote:
        rare.append(("remote", True))
    if parent is not None and parent.is_remote:
        rare.append(("parent_remote", True))
    if links:
        rare.append(("links", tuple(links)))
    if any(dropped):
        rare.append(("dropped", dropped))
    return tuple(rare) or None


def columns_of(items: list[Any]) -> list[Sequence[Any]]:
    """Buffer items as one sequence per record position (what a DataFrame is built of)."""
    return [items[position::ENTRY] for position in range(ENTRY)]


def join(items: list[Any]) -> list[Record]:
    """Records from buffer items, ``ENTRY`` per record (a copy of part of the buffer)."""
    return list(zip(*columns_of(items), strict=True))


def to_readable(record: Record) -> ReadableSpan:
    """The SDK span a record was made from (equal in every field an exporter reads)."""
    rare = dict(record[RARE] or ())
    flags = TraceFlags(record[FLAGS])
    state = TraceState(list(rare["trace_state"])) if "trace_state" in rare else None
    trace_id = record[TRACE_ID]
    context = SpanContext(trace_id, record[SPAN_ID], bool(rare.get("remote")), flags, state)
    parent = None
    if record[PARENT_ID] is not None:
        parent = SpanContext(trace_id, record[PARENT_ID], bool(rare.get("parent_remote")),
                             _SAMPLED)
    dropped = rare.get("dropped", (0, 0, 0))
    attrs: Any = dict(record[ATTRS])
    if dropped[0]:
        attrs = BoundedAttributes(attributes=attrs, immutable=True)
        attrs.dropped = dropped[0]
    events: Any = [Event(name, dict(attrs), ts) for name, ts, attrs in record[EVENTS]]
    links: Any = list(rare.get("links", ()))
    for position, values in ((1, events), (2, links)):
        if dropped[position]:
            bounded = BoundedList.from_seq(None, values)
            bounded.dropped = dropped[position]
            if position == 1:
                events = bounded
            else:
                links = bounded
    return ReadableSpan(
        name=record[NAME], context=context, parent=parent, resource=record[RESOURCE],
        attributes=attrs, events=events, links=links, kind=SpanKind(record[KIND]),
        instrumentation_scope=record[SCOPE],
        status=Status(StatusCode(record[STATUS]), record[STATUS_MESSAGE]),
        start_time=record[START], end_time=record[END],
    )

