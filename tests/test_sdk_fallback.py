"""The SDK's private fields the hot path reads (``_capture/sdk.py``) have a public
fallback: an SDK that renames them is still collected, through its public API, into the
very same records; the fields are read only where the installed SDK was checked to
have them, which the pinned one is. The forwarder's queue count likewise."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from llmtrace_nb._capture import sdk
from llmtrace_nb._capture.collector import CellRef, SpanCollector
from llmtrace_nb._capture.record import to_readable
from llmtrace_nb._shape.frames import FrameBuilder
from llmtrace_nb._shape.pricing import PriceBook
from llmtrace_nb._ship import forward

from otlp_receiver import receiver
from spans import openai_chat

#: what a ReadableSpan offers publicly (what a future SDK keeps, whatever its fields)
PUBLIC_API = ("name", "context", "parent", "kind", "start_time", "end_time", "status",
              "attributes", "events", "links", "resource", "instrumentation_scope",
              "dropped_attributes", "dropped_events", "dropped_links")


class RenamedSpan(ReadableSpan):
    """A span of a future SDK: the same public API, none of today's private fields."""

    def __init__(self, span: Any) -> None:  # no super().__init__: no _context, _name, …
        self.future_fields = {name: getattr(span, name) for name in PUBLIC_API}

    def get_span_context(self) -> Any:
        return self.future_fields["context"]


for _name in PUBLIC_API:
    setattr(RenamedSpan, _name, property(lambda self, n=_name: self.future_fields[n]))


class Tee(SpanProcessor):
    """A span processor that hands each span to two collectors: one as the SDK made it,
    one as the renamed SDK would (``rename``)."""

    def __init__(self, fast: SpanCollector, other: SpanCollector, rename: bool) -> None:
        self.fast, self.other, self.rename = fast, other, rename

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.fast.on_start(span, parent_context)
        self.other.on_start(RenamedSpan(span) if self.rename else span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.fast.on_end(span)
        self.other.on_end(RenamedSpan(span) if self.rename else span)


#: attributes a span keeps (the SDK warns of each one dropped past it)
LIMIT = 32


def every_kind_of_span(provider: TracerProvider, collectors: list[SpanCollector]) -> None:
    tracer = provider.get_tracer("tests", "1.0")
    cell = CellRef(number=3, name="cell [3]")
    for collector in collectors:
        collector.register_cell(cell)
        collector.active_cell = cell
    with tracer.start_as_current_span("agent") as agent:
        with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT,
                                          attributes=openai_chat()):
            pass
        agent.add_event("exception", {"exception.type": "ValueError", "exception.message": "x"})
        agent.set_status(Status(StatusCode.ERROR, "failed"))
    for collector in collectors:
        collector.active_cell = None
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("vendor", "v")]))
    span = tracer.start_span("from afar", context=set_span_in_context(NonRecordingSpan(remote)),
                             links=[Link(remote, {"why": "batch"}), Link(remote)],
                             attributes={f"a{i}": i for i in range(LIMIT + 2)})
    for i in range(4):
        span.add_event(f"chunk {i}", {"i": i})
    span.end()
    with tracer.start_as_current_span("empty"):
        pass


def collected(readers: sdk.Readers, rename: bool) -> tuple[SpanCollector, SpanCollector]:
    fast, other = SpanCollector(), SpanCollector(readers=readers)
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=LIMIT, max_events=3,
                                                     max_links=1))
    provider.add_span_processor(Tee(fast, other, rename))
    every_kind_of_span(provider, [fast, other])
    return fast, other


def test_the_pinned_sdk_takes_the_fast_path() -> None:
    assert sdk.READERS is sdk.FIELDS
    assert sdk._probe() is sdk.FIELDS
    collector = SpanCollector()
    assert collector.readers is sdk.FIELDS
    assert collector.on_end.__func__ is SpanCollector.on_end  # type: ignore[attr-defined]
    assert collector.on_start.__func__ is SpanCollector.on_start  # type: ignore[attr-defined]
    batch = BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=64,
                               max_export_batch_size=8)
    try:
        assert sdk.batch_queue(batch, 64) is not None
    finally:
        batch.shutdown()


def test_public_readers_make_the_same_records_from_the_same_spans() -> None:
    fast, public = collected(sdk.PUBLIC, rename=False)
    assert public.on_end.__func__ is SpanCollector._on_end_public  # type: ignore[attr-defined]
    assert len(fast.snapshot().records) == 4
    assert public.snapshot().records == fast.snapshot().records


def test_an_sdk_without_the_private_fields_is_still_collected() -> None:
    """The renamed SDK's spans have no ``_context``, ``_attributes``, …: read through
    the public API they make records, frames and rebuilt spans equal to today's."""
    span = RenamedSpan(ReadableSpan("x", context=SpanContext(1, 2, False)))
    with pytest.raises(AttributeError):
        sdk.FIELDS.entry_of(span, None)
    fast, renamed = collected(sdk.PUBLIC, rename=True)
    records = renamed.snapshot().records
    assert len(records) == 4 and records == fast.snapshot().records
    assert [c for _, c in renamed.snapshot().spans()] == [c for _, c in fast.snapshot().spans()]
    assert sum(c is not None for _, c in renamed.snapshot().spans()) == 2  # the cell's
    assert [s.to_json() for s, _ in renamed.snapshot().spans()] == [
        s.to_json() for s, _ in fast.snapshot().spans()]
    frame = FrameBuilder(renamed, PriceBook()).spans()
    assert len(frame) == 4
    pd.testing.assert_frame_equal(frame, FrameBuilder(fast, PriceBook()).spans())


def test_the_probe_picks_the_public_api_for_a_renamed_sdk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = sdk._probe_spans()
    monkeypatch.setattr(sdk, "_probe_spans",
                        lambda: [(RenamedSpan(s), RenamedSpan(e)) for s, e in real])
    assert sdk._probe() is sdk.PUBLIC


def test_the_probe_picks_the_public_api_when_a_field_means_something_else(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A field still there but no longer what the public API says (here: events kept
    elsewhere, ``_events`` left empty) must not make silently empty records."""
    real = sdk._probe_spans()

    class Moved(ReadableSpan):
        @property
        def events(self) -> Any:
            return self.moved_events

    def moved(span: ReadableSpan) -> ReadableSpan:
        out = Moved.__new__(Moved)
        out.__dict__.update(vars(span))
        out.moved_events = span.events  # type: ignore[attr-defined]
        out._events = ()  # type: ignore[assignment]
        return out

    monkeypatch.setattr(sdk, "_probe_spans", lambda: [(s, moved(e)) for s, e in real])
    assert sdk._probe() is sdk.PUBLIC


def test_the_probe_picks_the_public_api_when_the_sdk_makes_no_span(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list[Any]:
        raise TypeError("TracerProvider() got an unexpected keyword argument")

    monkeypatch.setattr(sdk, "_probe_spans", broken)
    assert sdk._probe() is sdk.PUBLIC
    monkeypatch.setattr(sdk, "_probe_spans", list)  # OTEL_SDK_DISABLED: no span at all
    assert sdk._probe() is sdk.PUBLIC


def test_a_collector_made_while_the_fields_are_off_reads_the_public_api(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "READERS", sdk.PUBLIC)
    collector = SpanCollector()
    provider = TracerProvider()
    provider.add_span_processor(collector)
    collector.active_cell = cell = CellRef(number=1, name="cell [1]")
    with provider.get_tracer("t").start_as_current_span("x", attributes={"a": 1}):
        pass
    assert collector.readers is sdk.PUBLIC
    (span, found), = collector.snapshot().spans()
    assert found is cell and dict(span.attributes or {}) == {"a": 1}


def test_files_loaded_through_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, _ = collected(sdk.PUBLIC, rename=False)
    spans = fast.snapshot().spans()
    public = SpanCollector(readers=sdk.PUBLIC)
    assert public.add_entries(spans, [c for _, c in spans if c is not None][:1]) == 4
    assert public.snapshot().records == fast.snapshot().records
    assert [to_readable(r).to_json() for r in public.snapshot().records] == [
        s.to_json() for s, _ in spans]


@pytest.mark.parametrize("counting", [False, True])
def test_the_forwarders_queue_is_counted_without_the_private_queue(
        counting: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """queued and dropped read the batch processor's deque where the SDK keeps it; an
    SDK that keeps it elsewhere gets the same figures, counted."""
    monkeypatch.setattr(forward, "MAX_QUEUE", 8)
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    if counting:
        monkeypatch.setattr(forward, "batch_queue", lambda *args: None)
    fwd = forward.Forwarder(dict, PriceBook())
    with receiver() as rx:
        fwd.start(forward.make_config(rx.url))
        pipeline = fwd._pipeline
        assert pipeline is not None and pipeline.counting is counting
        provider = TracerProvider(resource=Resource.get_empty())
        provider.add_span_processor(fwd)
        tracer = provider.get_tracer("t")
        # the batch processor's worker waits while we hold its export lock: no span
        # leaves the queue meanwhile, so what is queued and dropped is exact
        with pipeline.batch._batch_processor._export_lock:
            for i in range(20):
                with tracer.start_as_current_span(f"s{i}"):
                    pass
            before = fwd.counts()
        pipeline.batch.force_flush()
        after = fwd.counts()
        fwd.stop()
        assert len(rx.spans) == 8
    assert before == {"sent": 0, "failed": 0, "queued": 8, "filtered": 0, "dropped": 12}
    assert after == {"sent": 8, "failed": 0, "queued": 0, "filtered": 0, "dropped": 12}
