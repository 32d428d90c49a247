"""A copy of a finished span with other attributes or events (ReadableSpan is immutable)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan


def replace_span(span: ReadableSpan, *, attributes: Mapping[str, Any] | None = None,
                 events: Sequence[Event] | None = None) -> ReadableSpan:
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=dict(span.attributes or {}) if attributes is None else attributes,
        events=span.events if events is None else events, links=span.links, kind=span.kind,
        instrumentation_scope=span.instrumentation_scope, status=span.status,
        start_time=span.start_time, end_time=span.end_time,
    )
