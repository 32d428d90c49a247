"""The capture stage: bounded buffer, drops, cell stamps, thread safety."""

from __future__ import annotations

import gc
import sys
import threading

import pytest
from opentelemetry.sdk.trace import TracerProvider

from llmtrace_nb._capture.collector import CellRef, SpanCollector
from llmtrace_nb._capture.record import ENTRY


def make(max_spans: int = 100) -> tuple[SpanCollector, TracerProvider]:
    collector = SpanCollector(max_spans)
    provider = TracerProvider()
    provider.add_span_processor(collector)
    return collector, provider


def test_keeps_finished_spans_with_their_cell() -> None:
    collector, provider = make()
    tracer = provider.get_tracer("t")
    cell = CellRef(number=3, name="cell [3]")
    collector.active_cell = cell
    with tracer.start_as_current_span("in-cell"):
        pass
    collector.active_cell = None
    with tracer.start_as_current_span("outside"):
        pass
    entries = collector.snapshot().spans()
    assert [(s.name, c) for s, c in entries] == [("in-cell", cell), ("outside", None)]


def test_span_started_in_cell_but_ended_after_keeps_the_cell() -> None:
    collector, provider = make()
    cell = CellRef(number=1, name="cell [1]")
    collector.active_cell = cell
    span = provider.get_tracer("t").start_span("late")
    collector.active_cell = None
    span.end()
    assert collector.snapshot().spans()[0][1] is cell


def test_bounded_buffer_evicts_oldest_and_counts_drops() -> None:
    collector, provider = make(max_spans=10)
    tracer = provider.get_tracer("t")
    for i in range(25):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    snap = collector.snapshot()
    assert len(snap.records) == 10
    assert snap.dropped == 15
    assert [s.name for s, _ in snap.spans()] == [f"s{i}" for i in range(15, 25)]
    assert snap.first_seq == 15 and snap.end_seq == 25


def test_resize_and_clear() -> None:
    collector, provider = make(max_spans=10)
    tracer = provider.get_tracer("t")
    for i in range(10):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    collector.resize(4)
    assert len(collector) == 4 and collector.dropped == 6
    generation = collector.snapshot().generation
    collector.clear()
    snap = collector.snapshot()
    assert len(snap.records) == 0 and snap.dropped == 0 and snap.generation == generation + 1
    with pytest.raises(ValueError):
        collector.resize(0)
    with pytest.raises(ValueError):
        SpanCollector(0)


def test_disabled_collector_collects_nothing() -> None:
    collector, provider = make()
    collector.enabled = False
    with provider.get_tracer("t").start_as_current_span("x"):
        pass
    assert len(collector) == 0


def test_threads_each_span_collected_exactly_once() -> None:
    collector, provider = make(max_spans=100_000)
    tracer = provider.get_tracer("t")
    cell = CellRef(number=7, name="cell [7]")
    collector.active_cell = cell

    def work(n: int) -> None:
        for i in range(500):
            with tracer.start_as_current_span(f"t{n}-{i}"):
                pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = collector.snapshot().spans()
    names = [s.name for s, _ in entries]
    assert len(names) == 4000 == len(set(names))
    assert all(c is cell for _, c in entries)


def test_bound_holds_after_every_span() -> None:
    # on_end trims lazily (past the bound by a slack); readers must never see that
    collector, provider = make(max_spans=10)
    tracer = provider.get_tracer("t")
    for i in range(1, 200):
        with tracer.start_as_current_span(f"s{i}"):
            pass
        snap = collector.snapshot()
        kept = min(i, 10)
        assert len(collector) == len(snap.records) == kept
        assert collector.dropped == snap.dropped == snap.oldest_seq == i - kept
        assert collector.appended == snap.end_seq == i
        names = [f"s{j}" for j in range(i - kept + 1, i + 1)]
        assert [s.name for s, _ in snap.spans()] == names
        assert [r[3] for r in collector.records_since(i - 3)] == names[-3:]
        assert len(collector._buffer) <= 11 * ENTRY  # what is held, slack included


@pytest.mark.parametrize("max_spans", [100_000, 500])
def test_readers_beside_writers_see_each_span_once_in_order(max_spans: int) -> None:
    # Writers append without the lock; an incremental reader (like the DataFrame cache
    # and the live line) must still see every kept span once, numbered right.
    collector, provider = make(max_spans=max_spans)
    tracer = provider.get_tracer("t")
    writers, per_writer = 4, 3_000
    seen: list[str] = []
    done = threading.Event()

    def work(n: int) -> None:
        for i in range(per_writer):
            with tracer.start_as_current_span(f"{n}:{i}"):
                pass

    def read() -> None:
        since = 0
        while True:
            last = done.is_set()
            snap = collector.snapshot(since)
            assert snap.first_seq == max(since, snap.oldest_seq)
            seen.extend(r[3] for r in snap.records)
            since = snap.end_seq
            if last:
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, mid on_end included
    try:
        reader = threading.Thread(target=read)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(writers)]
        reader.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        reader.join()
    finally:
        sys.setswitchinterval(interval)
    total = writers * per_writer
    assert collector.appended == total
    assert len(collector) == min(total, max_spans)
    assert collector.dropped == total - len(collector)
    assert len(seen) == len(set(seen))
    if max_spans >= total:
        assert len(seen) == total
    for n in range(writers):  # each writer's spans in the order it ended them
        mine = [int(name.split(":")[1]) for name in seen if name.startswith(f"{n}:")]
        assert mine == sorted(mine)
    assert seen[-len(collector):] == [r[3] for r in collector.snapshot().records]


def test_kept_spans_leave_nothing_for_the_garbage_collector_to_rescan() -> None:
    # Records made full collections cost ~6% of a bare span while they were one tuple
    # holding a dict (never untracked); split into entries, none stays tracked.
    collector, provider = make(max_spans=10_000)
    tracer = provider.get_tracer("t")
    gc.collect()
    before = len(gc.get_objects())
    for i in range(5_000):
        with tracer.start_as_current_span("s", attributes={"i": i, "model": "m", "ok": True}):
            pass
    gc.collect()
    assert len(collector) == 5_000
    assert len(gc.get_objects()) - before < 100


def test_record_rebuilds_the_span_an_exporter_would_see() -> None:
    """Records replace ReadableSpans in the buffer; nothing an exporter reads may be lost."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import (
        Link,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TraceState,
    )

    collector, provider = make()
    originals = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(originals))
    tracer = provider.get_tracer("scope", "1.2", attributes={"s": 1})
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("k", "v")]))
    from opentelemetry.trace import NonRecordingSpan, set_span_in_context
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER,
                                      context=set_span_in_context(NonRecordingSpan(remote)),
                                      links=[Link(remote, {"why": "x"})]) as root:
        root.set_attribute("tuple", ("a", "b"))
        root.add_event("chunk", {"i": 1})
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
            child.record_exception(ValueError("bad"))
        for i in range(130):  # past the default limit of 128 attributes: some dropped
            root.set_attribute(f"a{i}", i)
    rebuilt = [span for span, _ in collector.snapshot().spans()]
    expected = originals.get_finished_spans()
    assert [s.to_json() for s in rebuilt] == [s.to_json() for s in expected]
    assert encode_spans(rebuilt) == encode_spans(expected)  # flags, scope, dropped counts…
    assert len(rebuilt) == 2
    assert rebuilt[1].dropped_attributes == expected[1].dropped_attributes > 0



def test_sdk_spans_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain SDK span needs no _rare(): it is the slow, general path (files, remote
    parents, links). Taking it for every span cost 5% per span, unnoticed, once."""
    from llmtrace_nb._capture import record

    def slow_path(span: object) -> None:
        raise AssertionError("a plain SDK span went through _rare()")

    monkeypatch.setattr(record, "_rare", slow_path)
    collector, provider = make()
    with provider.get_tracer("t").start_as_current_span("x", attributes={"a": 1}):
        pass
    assert collector.snapshot().records[0][record.ATTRS] == {"a": 1}
