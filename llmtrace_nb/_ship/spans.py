"""A copy of a finished span with some parts replaced (ReadableSpan is immutable)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status


def replace_span(span: ReadableSpan, *, name: str | None = None,
                 attributes: Mapping[str, Any] | None = None,
                 events: Sequence[Event] | None = None, links: Sequence[Link] | None = None,
                 status: Status | None = None, resource: Resource | None = None
                 ) -> ReadableSpan:
    return ReadableSpan(
        name=span.name if name is None else name, context=span.context, parent=span.parent,
        resource=span.resource if resource is None else resource,
        attributes=dict(span.attributes or {}) if attributes is None else attributes,
        events=span.events if events is None else events,
        links=span.links if links is None else links, kind=span.kind,
        instrumentation_scope=span.instrumentation_scope,
        status=span.status if status is None else status,
        start_time=span.start_time, end_time=span.end_time,
    )
