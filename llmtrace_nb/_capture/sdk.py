"""Capture: the OpenTelemetry SDK's private fields read on the hot path, in one place,
each with the public API to read instead.

``on_end`` runs for every span, and the SDK's public properties cost more than the rest
of the collector: ``span.attributes`` wraps the dict in a proxy, ``span.events`` and
``span.links`` copy theirs into tuples, and every property is a Python call (~100 ns).
So a span's record is read from the fields behind them: ``_context``, ``_parent``,
``_name``, ``_kind``, ``_start_time``, ``_end_time``, ``_status`` (its ``_status_code``
and ``_description``), ``_attributes`` (a ``BoundedAttributes``, whose ``_dict`` is the
ended span's own dict), ``_events`` and ``_links`` (``BoundedList``\\ s, whose ``_dq``
deque is truth-tested and iterated from C), ``_resource`` and ``_instrumentation_scope``.

They are private: any SDK release may rename them. So they are checked once per
process, at import, on real spans made by the installed SDK (``_probe``): each span is
read both ways, and the two records must be equal. Any difference, any missing field,
any error, and ``READERS`` is ``PUBLIC``: every span is read through the public API,
slower but never empty and never wrong. The check is what makes the fast path safe, so
``FIELDS`` is never chosen without it.

The forwarder's batch queue (``BatchSpanProcessor._batch_processor._queue``, read for
``queued`` and ``dropped``) is looked up once per processor (``batch_queue``); without it
the forwarder counts what it hands over and what is exported itself.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanKind, StatusCode

from . import record
from .record import ENTRY, EventRecord, Record

_INTERNAL = SpanKind.INTERNAL
_UNSET = StatusCode.UNSET
_NO_STATE = DEFAULT_TRACE_STATE
_EMPTY: Mapping[str, Any] = {}

logger = logging.getLogger(__name__)


# -- from the SDK's fields (the hot path) --------------------------------------------------


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


def entry_from_fields(span: ReadableSpan, cell: int | None) -> Record:
    """The record of an ended span (any ``ReadableSpan``: collected or from a file), as
    the values the buffer takes, read from the span's own fields.

    This runs for every span, so it reads the fields (the public properties wrap or copy
    them) and unpacks the SpanContext, a tuple, in one step (its properties cost ~100 ns
    each).
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
    # containers) is read directly; anything else (spans from a file) through _plain.
    # The containers are checked, not the span: on_end gets a ReadableSpan.
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
        # the counters themselves: the dropped_* properties check types first
        dropped = (getattr(attributes, "dropped", 0), getattr(events, "dropped", 0),
                   getattr(links, "dropped", 0))
        rare = record._rare(context, parent, getattr(links, "_dq", links), dropped)
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


def span_id_from_field(span: Any) -> int:
    """The id of a span starting or ending (``SpanContext`` is a tuple: [1] is its id)."""
    return span._context[1]


# -- from the public API (the fallback) ----------------------------------------------------


def _public_attributes(attributes: Any) -> Mapping[str, Any]:
    return dict(attributes) if attributes else _EMPTY


def entry_from_api(span: ReadableSpan, cell: int | None) -> Record:
    """``entry_from_fields`` through the SDK's public API: the same record, slower (the
    attributes are copied out of their read-only proxy, the events and links out of
    their tuples)."""
    context: Any = span.context
    parent = span.parent
    status = span.status
    links = span.links
    return (
        context.trace_id,
        context.span_id,
        None if parent is None else parent.span_id,
        span.name,
        span.kind.value,
        span.start_time,
        span.end_time,
        status.status_code.value,
        status.description,
        tuple((e.name, e.timestamp, _public_attributes(e.attributes)) for e in span.events),
        cell,
        int(context.trace_flags),
        record._rare(context, parent, links,
                     (span.dropped_attributes, span.dropped_events, span.dropped_links)),
        _public_attributes(span.attributes),
        span.resource,
        span.instrumentation_scope,
    )


def span_id_from_api(span: Any) -> int:
    return span.context.span_id


# -- which ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readers:
    """How a span is read: its record, and its id (on start and end)."""

    name: str
    entry_of: Callable[[ReadableSpan, int | None], Record]
    span_id: Callable[[Any], int]


FIELDS = Readers("the SDK's fields", entry_from_fields, span_id_from_field)
PUBLIC = Readers("the SDK's public API", entry_from_api, span_id_from_api)


def _probe_spans() -> list[tuple[Any, ReadableSpan]]:
    """(the span as on_start got it, the ReadableSpan on_end got) of spans made by the
    installed SDK: a plain one, and one with everything a record keeps (a remote parent
    with trace state, a link, events, an error status, a client kind, and attributes,
    events and links dropped by the limits)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    started: list[Any] = []
    ended: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            started.append(span)

        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

    provider = TracerProvider(sampler=ALWAYS_ON, resource=Resource.get_empty(),
                              shutdown_on_exit=False,
                              span_limits=SpanLimits(max_span_attributes=4, max_events=2,
                                                     max_links=1))
    provider.add_span_processor(Keep())
    tracer = provider.get_tracer("llmtrace_nb.probe", "1")
    with tracer.start_as_current_span("plain", attributes={"a": "b", "n": 1, "t": ("x",)}):
        pass
    # the SDK warns of the attribute the limit drops, as meant: not from this thread
    here = threading.get_ident()
    quiet = logging.getLogger("opentelemetry.attributes")
    not_ours = _NotFrom(here)
    quiet.addFilter(not_ours)
    try:
        rich = _rich_span(tracer)
    finally:
        quiet.removeFilter(not_ours)
    rich.end()
    provider.shutdown()
    return list(zip(started, ended, strict=True))


class _NotFrom(logging.Filter):
    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


def _rich_span(tracer: Any) -> Any:
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        SpanContext,
        Status,
        TraceFlags,
        TraceState,
        set_span_in_context,
    )

    remote = SpanContext(0x1234, 0x5678, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED),
                         trace_state=TraceState([("k", "v")]))
    linked = SpanContext(0x9ABC, 0xDEF0, is_remote=True)
    span = tracer.start_span(
        "rich", context=set_span_in_context(NonRecordingSpan(remote)), kind=SpanKind.CLIENT,
        attributes={"a": 1.5, "b": True, "c": ("p", "q"), "d": "e", "f": 2},
        links=[Link(linked, {"l": 1}), Link(remote)])
    for i in range(3):
        span.add_event(f"e{i}", {"i": i}, timestamp=1_000 + i)
    span.set_status(Status(StatusCode.ERROR, "boom"))
    return span


def _probe() -> Readers:
    """FIELDS when the installed SDK's spans read the same through their fields as
    through the public API; else PUBLIC."""
    try:
        spans = _probe_spans()
        agree = len(spans) == 2 and all(
            FIELDS.span_id(start) == PUBLIC.span_id(start) == PUBLIC.span_id(end)
            == FIELDS.span_id(end)
            and len(record := FIELDS.entry_of(end, 7)) == ENTRY
            and record == PUBLIC.entry_of(end, 7)
            for start, end in spans)
    except Exception as exc:  # a field renamed, a type changed: the public API it is
        logger.debug("llmtrace_nb: SDK fields unreadable (%r); spans are read through "
                     "the public API", exc)
        return PUBLIC
    if not agree:
        logger.debug("llmtrace_nb: SDK fields disagree with the public API; spans are "
                      "read through the public API")
        return PUBLIC
    return FIELDS


#: how this process reads spans (chosen once, at import)
READERS = _probe()


# -- writing a plain attribute (the OpenAI instrumentation's two dozen a call) ------------

_PLAIN_VALUES = (str, bool, int, float)


def _set_plain_field(span: Any, key: str, value: Any) -> bool:
    """Write a str, bool, int or float attribute (or a tuple of strings, such as the
    finish reasons) into a recording span of the SDK's own class straight into its
    attribute dict, as ``set_attribute`` would (a key set before moves to the end), when
    no limit applies. False, with nothing written, otherwise: the caller uses
    ``set_attribute``.

    ``set_attribute`` takes the span's lock and the attribute dict's, and checks the key
    and the value on the way (~2 µs inside a real call; the OpenAI instrumentation sets
    two dozen a call). The locks keep an ``end()`` on another thread from racing a write;
    the instrumentation writes and ends a span on one thread.
    """
    if type(span) is not _SPAN_CLASS:
        return False
    if type(value) not in _PLAIN_VALUES and not (
            type(value) is tuple and all(type(one) is str for one in value)):
        return False  # (a tuple is immutable: the SDK would store an equal copy)
    attributes = span._attributes
    if (span._end_time is not None or attributes._immutable
            or attributes.max_value_len is not None or type(key) is not str or not key):
        return False
    held = attributes._dict
    if key in held:
        del held[key]
    elif attributes.maxlen is not None and len(held) >= attributes.maxlen:
        return False  # the SDK would drop the oldest and count it
    held[key] = value
    return True


_SPAN_CLASS: type[Any] | None = None


def _probe_plain_setter() -> Callable[[Any, str, Any], bool] | None:
    """``_set_plain_field`` when, on spans of the installed SDK, it leaves the same
    attributes in the same order as ``set_attribute`` and declines where a limit applies;
    else None."""
    global _SPAN_CLASS
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider

    def tracer(**limits: Any) -> Any:
        provider = TracerProvider(resource=Resource.get_empty(), shutdown_on_exit=False,
                                  span_limits=SpanLimits(**limits))
        return provider.get_tracer("llmtrace_nb.probe", "1")

    writes = [("a", "x"), ("n", 1), ("f", 0.5), ("b", True), ("a", "y"), ("n", 2),
              ("t", ("stop", "length")), ("e", ())]
    try:
        plain = tracer()
        ours, theirs = plain.start_span("ours", attributes={"k": 0}), plain.start_span(
            "theirs", attributes={"k": 0})
        _SPAN_CLASS = type(ours)
        done = [_set_plain_field(ours, key, value) for key, value in writes]
        for key, value in writes:
            theirs.set_attribute(key, value)
        full = tracer(max_span_attributes=2).start_span("full", attributes={"k": 0, "j": 1})
        short = tracer(max_attribute_length=3).start_span("short")
        agree = (all(done) and list(ours.attributes.items()) == list(theirs.attributes.items())
                 and _set_plain_field(full, "k", 5) and not _set_plain_field(full, "new", 1)
                 and dict(full.attributes) == {"j": 1, "k": 5}
                 and not _set_plain_field(short, "s", "long text")
                 and not _set_plain_field(short, "t", ("long text",)))
        for span in (ours, theirs, full, short):
            span.end()
        ended = not _set_plain_field(ours, "late", 1) and "late" not in ours.attributes
    except Exception as exc:  # a field renamed: set_attribute it is
        logger.debug("llmtrace_nb: attributes set through the SDK's API (%r)", exc)
        return None
    return _set_plain_field if agree and ended else None


#: writes a plain attribute into a span's fields, or says it did not (chosen at import;
#: None when the installed SDK's fields are not as checked)
PLAIN_SETTER = _probe_plain_setter()


# -- the forwarder's batch queue -----------------------------------------------------------


def batch_queue(processor: Any, max_queue_size: int) -> collections.deque[Any] | None:
    """The queue of a ``BatchSpanProcessor`` made with ``max_queue_size`` (the SDK says
    nowhere else how many spans wait), when it is where the installed SDK keeps it
    (``_batch_processor._queue``, a deque of that bound); else None, and the caller
    counts for itself."""
    queue = getattr(getattr(processor, "_batch_processor", None), "_queue", None)
    if type(queue) is collections.deque and queue.maxlen == max_queue_size:
        return queue
    return None
