"""Capture: the compact form a finished span is kept in.

The buffer holds each record as its ``ENTRY`` values side by side, flat in one deque
(the positions are named below): ids, name, kind, times, status, events, cell, flags,
the attribute dict, the Resource and the InstrumentationScope. Readers that want whole
records get tuples (``join``) with the same positions; ``to_readable`` rebuilds an SDK
span only when one leaves as a span (a file, a replay). Why a flat record and not the
SDK's ``ReadableSpan`` (or a tuple, a NamedTuple, a slotted class): docs/ARCHITECTURE.md,
"Decisions and why".
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

_INTERNAL = SpanKind.INTERNAL
_UNSET = StatusCode.UNSET
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NO_STATE = DEFAULT_TRACE_STATE
_EMPTY: Mapping[str, Any] = {}


def _plain(attributes: Any) -> Mapping[str, Any]:
    # An ended span's BoundedAttributes rejects writes, so its inner dict can be kept as is.
    if isinstance(attributes, BoundedAttributes):
        return attributes._dict
    return dict(attributes) if attributes else _EMPTY


def _events(events: Any) -> tuple[EventRecord, ...]:
    if isinstance(events, BoundedList):
        events = events._dq  # type: ignore[attr-defined]  # the public property copies it
    if not events:
        return ()
    return tuple((e.name, e.timestamp, _plain(e.attributes)) for e in events)


def _rare(span: ReadableSpan) -> tuple[tuple[str, Any], ...] | None:
    """What only some spans have, kept so a rebuilt span equals the original."""
    ctx, parent = span.context, span.parent
    rare: list[tuple[str, Any]] = []
    state = ctx.trace_state
    if state is not None and state is not _NO_STATE and len(state):
        rare.append(("trace_state", tuple(state.items())))
    if ctx.is_remote:
        rare.append(("remote", True))
    if parent is not None and parent.is_remote:
        rare.append(("parent_remote", True))
    links = span._links  # the public property copies it
    if getattr(links, "_dq", links):  # a BoundedList's own truth test is a Python call
        rare.append(("links", tuple(links)))
    # the counters themselves: the dropped_* properties check types first
    dropped = (getattr(span._attributes, "dropped", 0), getattr(span._events, "dropped", 0),
               getattr(links, "dropped", 0))
    if any(dropped):
        rare.append(("dropped", dropped))
    return tuple(rare) or None


def entry_of(span: ReadableSpan, cell: int | None) -> Record:
    """The record of an ended span (any ``ReadableSpan``: collected or from a file), as
    the values the buffer takes.

    This runs for every span, so it reads the span's own fields (the public properties
    wrap or copy them) and unpacks the SpanContext, a tuple, in one step (its properties
    cost ~100 ns each).
    """
    context: Any = span._context  # never None for an ended span
    trace_id, span_id, is_remote, flags, state, _ = context
    parent = span._parent
    status = span._status
    kind = span._kind
    code = status._status_code
    attributes: Any = span._attributes
    events: Any = span._events
    links: Any = span._links
    attrs: Mapping[str, Any]
    # What the SDK hands to on_end (a ReadableSpan over the span's own bounded
    # containers) is read directly; anything else (spans from a file) through _plain and
    # _rare. The containers are checked, not the span: on_end gets a ReadableSpan.
    if type(attributes) is BoundedAttributes and type(events) is BoundedList \
            and type(links) is BoundedList:
        attrs = attributes._dict
        # a BoundedList's own truth test is a Python call; its deque's is not
        event_list = events._dq  # type: ignore[attr-defined]
        unusual = (links._dq  # type: ignore[attr-defined]
                   or attributes.dropped or events.dropped or links.dropped)
    else:
        attrs = _plain(attributes)
        event_list = events
        unusual = True
    rare = None
    if (unusual or is_remote or (state is not _NO_STATE and state)
            or (parent is not None and parent[2])):
        rare = _rare(span)
    return (
        trace_id,
        span_id,
        None if parent is None else parent[1],
        span._name,
        # _value_ is the enum's own slot; .value is a slower descriptor on this hot path
        0 if kind is _INTERNAL else kind._value_,
        span._start_time,
        span._end_time,
        0 if code is _UNSET else code._value_,
        status._description,
        _events(event_list) if event_list else (),
        cell,
        flags + 0,  # a plain int: TraceFlags instances are GC-tracked
        rare,
        attrs,
        span._resource,
        span._instrumentation_scope,
    )


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

