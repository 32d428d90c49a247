"""The policy every forwarded span passes: scrub secrets, redact content, keep or drop.

It runs in the exporter's thread (wrapped around the OTLP exporter), never on the span
hot path: a cell pays only the BatchSpanProcessor's enqueue for each span.

``--only`` works like tail sampling: the spans of a traced cell's trace wait until the
cell's root span ends, then the whole trace is kept if it had an error, was slower than
``slow:SECONDS`` or cost more than ``cost:USD``. Spans outside any cell are judged one by
one. Spans of a cell that end after its root follow the decision already made — except
a negative judgement under ``feedback:negative``: judgements usually come after the cell
ended, so one arriving for a trace that was held back keeps the trace from then on and
sends the spans it held back, recalled from the collector (``recall``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status, StatusCode

from .._capture.judge import EVALUATION, NEGATIVE_LABELS, SCORE_LABEL, SCORE_VALUE, is_negative
from .._capture.record import ATTRS, EVENTS, NAME, RARE, RESOURCE, STATUS_MESSAGE, Record
from .._fork import fresh_locks_after_fork
from .._read import semconv
from .._read.scrub import scrub_attributes, scrub_text
from .._shape.pricing import PriceBook
from .._shape.totals import CallTotals
from .spans import replace_span

REDACT_MODES = ("none", "hash", "drop")
_DECIDED_TRACES = 10_000  # decisions remembered for spans that end after their root


@dataclass(frozen=True)
class Only:
    """``--only errors,slow:SECONDS,cost:USD,feedback:negative``; a trace is kept if any
    rule matches. ``feedback`` holds the labels that make a judgement negative (with a
    score of 0 or less): ``feedback:negative`` the usual ones, ``feedback:bad|awful``
    one's own."""

    errors: bool = False
    slow_s: float | None = None
    cost_usd: float | None = None
    feedback: frozenset[str] | None = None

    @classmethod
    def parse(cls, text: str) -> Only:
        errors, slow, cost, feedback = False, None, None, None
        for raw in text.split(","):
            part = raw.strip()
            name, _, value = part.partition(":")
            try:
                if name == "errors" and not value:
                    errors = True
                elif name == "slow" and value:
                    slow = _positive(value)
                elif name == "cost" and value:
                    cost = _positive(value)
                elif name == "feedback" and value:
                    labels = {v.strip().lower() for v in value.split("|") if v.strip()}
                    if not labels:
                        raise ValueError
                    feedback = NEGATIVE_LABELS if labels == {"negative"} else \
                        frozenset(labels)
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(f"--only: bad rule {part!r}; use errors, slow:SECONDS, "
                                 "cost:USD or feedback:negative (or feedback:LABEL|LABEL), "
                                 "separated by commas") from None
        return cls(errors, slow, cost, feedback)

    def __str__(self) -> str:
        rules = (["errors"] if self.errors else []) + (
            [f"slow:{self.slow_s:g}"] if self.slow_s is not None else []) + (
            [f"cost:{self.cost_usd:g}"] if self.cost_usd is not None else [])
        if self.feedback is not None:
            rules.append("feedback:negative" if self.feedback == NEGATIVE_LABELS else
                         "feedback:" + "|".join(sorted(self.feedback)))
        return ",".join(rules)

    def negative(self, span: ReadableSpan) -> bool:
        """Whether ``span`` is a judgement this rule counts as negative."""
        if self.feedback is None or span.name != EVALUATION:
            return False
        attrs = span.attributes or {}
        score, label = attrs.get(SCORE_VALUE), attrs.get(SCORE_LABEL)
        return is_negative(float(score) if isinstance(score, int | float) else None,
                           label if isinstance(label, str) else None, self.feedback)


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError(value)
    return number


def _redactor(mode: str) -> Callable[[Any], Any] | None:
    if mode == "none":
        return None
    if mode == "drop":
        return lambda value: None

    def sha256(value: Any) -> str:
        text = value if isinstance(value, str) else repr(value)
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    return sha256


def clean_span(span: ReadableSpan, redact: str) -> ReadableSpan:
    """The span with secrets scrubbed everywhere it can carry them (name, attributes,
    events, links, status, resource) and, per ``redact``, its content hashed or dropped:
    every text attribute not known to be safe (``semconv.is_content``)."""
    redactor = _redactor(redact)
    attrs = scrub_attributes(span.attributes or {})
    if redactor is not None:
        attrs = _redact_mapping(attrs, redactor)
    events = []
    for event in span.events:
        event_attrs: Mapping[str, Any] = scrub_attributes(event.attributes or {})
        if redactor is not None:
            event_attrs = _redact_mapping(event_attrs, redactor)
        events.append(Event(scrub_text(event.name), event_attrs, event.timestamp))
    links = [Link(link.context, scrub_attributes(link.attributes or {}))
             for link in span.links]
    status = span.status
    if status.description:
        status = Status(status.status_code, scrub_text(status.description))
    return replace_span(span, name=scrub_text(span.name), attributes=attrs, events=events,
                        links=links, status=status, resource=scrubbed_resource(span.resource))


def clean_records(records: Sequence[Record], redact: str) -> list[Record]:
    """``clean_span`` for collector records (the store keeps records): the same parts
    scrubbed, the same content redacted."""
    redactor = _redactor(redact)

    def clean(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
        out = scrub_attributes(attrs)
        return out if redactor is None else _redact_mapping(out, redactor)

    cleaned = []
    for record in records:
        fields = list(record)
        fields[NAME] = scrub_text(record[NAME])
        fields[ATTRS] = clean(record[ATTRS])
        if record[EVENTS]:
            fields[EVENTS] = tuple((scrub_text(name), ts, clean(attrs))
                                   for name, ts, attrs in record[EVENTS])
        if record[STATUS_MESSAGE]:
            fields[STATUS_MESSAGE] = scrub_text(record[STATUS_MESSAGE])
        if record[RARE]:
            rare = dict(record[RARE])
            if "links" in rare:
                rare["links"] = tuple(Link(link.context,
                                           scrub_attributes(link.attributes or {}))
                                      for link in rare["links"])
                fields[RARE] = tuple(rare.items())
        fields[RESOURCE] = scrubbed_resource(record[RESOURCE])
        cleaned.append(tuple(fields))
    return cleaned


_resources: dict[int, tuple[Resource, Resource]] = {}


def scrubbed_resource(resource: Resource) -> Resource:
    """The resource with secrets scrubbed (``OTEL_RESOURCE_ATTRIBUTES=db.password=…``);
    one resource is shared by a provider's spans, so each is scrubbed once."""
    found = _resources.get(id(resource))
    if found is not None and found[0] is resource:
        return found[1]
    clean = Resource(scrub_attributes(resource.attributes), resource.schema_url)
    if len(_resources) > 64:
        _resources.clear()
    _resources[id(resource)] = (resource, clean)
    return clean


def _redact_mapping(attrs: Mapping[str, Any], redactor: Callable[[Any], Any]
                    ) -> dict[str, Any]:
    out = {}
    for key, value in attrs.items():
        if semconv.is_content(key, value):
            value = redactor(value)
            if value is None:
                continue
        out[key] = value
    return out


class PolicyExporter(SpanExporter):
    """Applies the policy to each batch, then hands what is kept to the next exporter."""

    def __init__(self, inner: SpanExporter, *, redact: str = "none", only: Only | None = None,
                 cell_roots: Callable[[], Mapping[int, int]] = dict,
                 prices: PriceBook | None = None,
                 content: Callable[[], bool] = lambda: True,
                 recall: Callable[[int], Sequence[ReadableSpan]] = lambda trace_id: ()
                 ) -> None:
        if redact not in REDACT_MODES:
            raise ValueError(f"--redact must be one of {', '.join(REDACT_MODES)}, got {redact!r}")
        self.inner = inner
        self.redact = redact
        self.only = only
        self.cell_roots = cell_roots  # trace id -> root span id of traced cells
        self.prices = prices or PriceBook()
        #: whether content capture is on: when it is off no text leaves, whatever ``redact``
        #: says and whichever instrumentation recorded it
        self.content = content
        #: the spans of a trace the session still holds (a trace kept late: feedback)
        self.recall = recall
        self.filtered = 0
        self._lock = threading.Lock()
        fresh_locks_after_fork(self, "_lock")
        self._waiting: dict[int, list[ReadableSpan]] = {}
        self._decided: OrderedDict[int, bool] = OrderedDict()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        kept = self._select(spans) if self.only is not None else list(spans)
        if not kept:
            return SpanExportResult.SUCCESS
        return self.inner.export([clean_span(s, self._redact()) for s in kept])

    def _redact(self) -> str:
        return self.redact if self.content() else "drop"

    # -- --only ------------------------------------------------------------------------

    def _select(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        roots = self.cell_roots()
        kept: list[ReadableSpan] = []
        late: list[int] = []  # traces held back that a negative judgement keeps now
        only = self.only
        assert only is not None
        with self._lock:
            for span in spans:
                trace_id = span.context.trace_id if span.context else 0
                if trace_id in self._decided and not self._decided[trace_id] \
                        and only.negative(span):
                    self._decided[trace_id] = True
                    late.append(trace_id)
                    kept.append(span)
                elif trace_id in self._decided:
                    self._count(kept, [span], self._decided[trace_id])
                elif trace_id in roots:
                    waiting = self._waiting.setdefault(trace_id, [])
                    waiting.append(span)
                    if span.context.span_id == roots[trace_id]:
                        self._decide(trace_id, kept)
                elif only.negative(span):  # a judgement of a span outside any cell
                    self._decided[trace_id] = True
                    late.append(trace_id)
                    kept.append(span)
                else:
                    self._count(kept, [span], self._matches([span], span))
        for trace_id in late:  # outside the lock: the collector takes its own
            sending = {s.context.span_id for s in kept}
            held = [s for s in self.recall(trace_id) if s.context.span_id not in sending]
            kept.extend(held)
            with self._lock:
                self.filtered = max(0, self.filtered - len(held))
        return kept

    def _decide(self, trace_id: int, kept: list[ReadableSpan]) -> None:
        spans = self._waiting.pop(trace_id)
        root = next(s for s in spans if s.context.span_id == self.cell_roots()[trace_id])
        keep = self._matches(spans, root)
        self._decided[trace_id] = keep
        while len(self._decided) > _DECIDED_TRACES:
            self._decided.popitem(last=False)
        self._count(kept, spans, keep)

    def _count(self, kept: list[ReadableSpan], spans: list[ReadableSpan], keep: bool) -> None:
        if keep:
            kept.extend(spans)
        else:
            self.filtered += len(spans)

    def _matches(self, spans: Sequence[ReadableSpan], root: ReadableSpan) -> bool:
        only = self.only
        assert only is not None
        if only.errors and any(s.status.status_code is StatusCode.ERROR for s in spans):
            return True
        if only.feedback is not None and any(only.negative(s) for s in spans):
            return True
        duration_s = ((root.end_time - root.start_time) / 1e9
                      if root.end_time is not None and root.start_time is not None else 0.0)
        if only.slow_s is not None and duration_s > only.slow_s:
            return True
        if only.cost_usd is not None:
            # a call traced by a framework and by the client costs once (calls.py)
            totals = CallTotals(self.prices)
            for s in spans:
                totals.add(s.context.span_id, s.parent.span_id if s.parent else None,
                           s.context.trace_id, s.instrumentation_scope.name
                           if s.instrumentation_scope else None, s.attributes or {},
                           s.start_time, s.end_time)
            if totals.cost > only.cost_usd:
                return True
        return False

    def waiting(self) -> int:
        """Spans held until their cell's root span ends (``--only``)."""
        with self._lock:
            return sum(len(spans) for spans in self._waiting.values())

    def flush_waiting(self) -> SpanExportResult:
        """At shutdown: traces whose root never ended are judged on what arrived."""
        kept: list[ReadableSpan] = []
        with self._lock:
            for trace_id in list(self._waiting):
                spans = self._waiting.pop(trace_id)
                self._count(kept, spans, self._matches(spans, spans[-1]))
        if not kept:
            return SpanExportResult.SUCCESS
        return self.inner.export([clean_span(s, self._redact()) for s in kept])

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.flush_waiting()
        self.inner.shutdown()
