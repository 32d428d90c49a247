"""Capture: the compact form a finished span is kept in.

Keeping the SDK's ``ReadableSpan`` objects costs about 30% on top of a bare span: each one
holds a dozen objects the cyclic garbage collector tracks, and it rescans the growing heap
of them over and over. A record is a tuple of ints, strings and tuples only, which the
collector stops tracking the first time it sees it; the attributes are kept as a tuple of
keys (shared by every span with the same keys) and a tuple of values. Building one takes
about a microsecond. ``to_readable`` rebuilds an SDK span only when one leaves as a span
(a file, a replay).

Why tuples and not a class or dicts: the GC never untracks instances of classes (a
NamedTuple included), and a tuple holding any dict — even an untracked one — stays
tracked. The positions are named by the constants below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
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
KEYS = 9  # tuple of attribute keys, shared between records
VALUES = 10  # tuple of attribute values, in KEYS order
EVENTS = 11  # tuple of EventRecord (a record with events stays GC-tracked; they are few)
CELL = 12  # CellRef.seq of the cell the span belongs to, or None
ORIGIN = 13  # index of (resource, scope) in the collector's origins
FLAGS = 14  # int trace flags
RARE = 15  # None, or ((name, value), ...) of what most spans lack (see _rare)

#: more distinct key sets than this are kept unshared (keys made up per call)
MAX_SHARED_KEY_SETS = 10_000

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
        events = events._dq  # the public property copies it
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


def record_of(span: ReadableSpan, cell: int | None, origin: int,
              key_sets: dict[tuple[str, ...], tuple[str, ...]] | None = None) -> Record:
    """The record of an ended span (any ``ReadableSpan``: collected or read from a file).

    ``key_sets`` shares equal key tuples between records.
    """
    ctx, parent, status, kind = span.context, span.parent, span.status, span.kind
    code = status.status_code
    attributes = _plain(span._attributes)  # .attributes wraps it in a proxy
    keys = tuple(attributes)
    if key_sets is not None and len(key_sets) < MAX_SHARED_KEY_SETS:
        keys = key_sets.setdefault(keys, keys)
    return (
        ctx.trace_id,
        ctx.span_id,
        None if parent is None else parent.span_id,
        span.name,
        # _value_ is the enum's own slot; .value is a slower descriptor on this hot path
        0 if kind is _INTERNAL else kind._value_,
        span.start_time,
        span.end_time,
        0 if code is _UNSET else code._value_,
        status.description,
        keys,
        tuple(attributes.values()),
        _events(span._events),
        cell,
        origin,
        int(ctx.trace_flags),  # TraceFlags instances are GC-tracked; a plain int is not
        _rare(span),
    )


def attributes(record: Record) -> dict[str, Any]:
    """A record's attributes as a new dict."""
    return dict(zip(record[KEYS], record[VALUES], strict=True))


def to_readable(record: Record, origins: Sequence[tuple[Resource, InstrumentationScope | None]]
                ) -> ReadableSpan:
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
    attrs: Any = attributes(record)
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
    resource, scope = origins[record[ORIGIN]]
    return ReadableSpan(
        name=record[NAME], context=context, parent=parent, resource=resource,
        attributes=attrs, events=events, links=links, kind=SpanKind(record[KIND]),
        instrumentation_scope=scope,
        status=Status(StatusCode(record[STATUS]), record[STATUS_MESSAGE]),
        start_time=record[START], end_time=record[END],
    )

