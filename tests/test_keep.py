"""The store: chunks of records, the SQLite file, the background writer, restore."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.trace import Link, TraceFlags
from opentelemetry.trace.span import SpanContext, TraceState

from llmtrace_nb._capture.collector import CellRef, SpanCollector
from llmtrace_nb._capture.record import CELL, join, to_readable
from llmtrace_nb._keep import codec
from llmtrace_nb._keep.history import history_frame
from llmtrace_nb._keep.restore import read_records, restore
from llmtrace_nb._keep.store import SCHEMA_VERSION, Store, StoreError
from llmtrace_nb._keep.writer import StoreWriter
from llmtrace_nb._shape.pricing import PriceBook

from conftest import ROOT
from docs import _tree
from spans import Recorder, openai_chat


def recorded() -> Recorder:
    rec = Recorder()
    _tree(rec, CellRef(number=12, name="rag-eval", tags={"run": "1"}))
    rec.span("auto-mode call", {"i": 7, "f": 1.5, "b": True, "s": "x\udcff", "sa": ("a", "b"),
                                "ia": (1, 2), "fa": (0.5, 1.5), "ba": (True, False),
                                "raw": b"\x00\xffbytes"},
             cell=CellRef(number=13, name="cell [13]"))
    # what only some spans have: a trace state, a remote parent, links, dropped counts
    tracer = TracerProvider(span_limits=SpanLimits(max_span_attributes=2, max_events=1,
                                                   max_links=1))
    tracer.add_span_processor(rec.collector)
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), TraceState([("k", "v")]))
    from opentelemetry import trace

    span = tracer.get_tracer("rare").start_span(
        "rare", context=trace.set_span_in_context(trace.NonRecordingSpan(remote)),
        links=[Link(SpanContext(0x123, 0x456, False), {"why": "retry"}),
               Link(SpanContext(0x124, 0x457, False))],
        attributes={"a": 1, "b": 2, "c": 3})
    span.add_event("one")
    span.add_event("two")
    span.end()
    return rec


def _plain(attrs: object) -> dict[str, object]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(attrs or {}).items()}


def _fields(span: ReadableSpan) -> tuple[object, ...]:
    """Everything a span says (``to_json`` cannot show bytes attributes)."""
    return (span.name, span.context, span.parent, span.kind, span.start_time, span.end_time,
            span.status.status_code, span.status.description, _plain(span.attributes),
            [(e.name, e.timestamp, _plain(e.attributes)) for e in span.events],
            [(link.context, _plain(link.attributes)) for link in span.links])


def test_a_chunk_gives_back_the_records_it_was_given() -> None:
    rec = recorded()
    snap = rec.collector.snapshot()
    records = join(snap.items)
    back, cells = codec.decode(codec.encode(records, snap.cells))
    assert len(back) == len(records) > 5
    for orig, got in zip(records, back, strict=True):
        a, b = to_readable(orig), to_readable(got)
        assert _fields(b) == _fields(a)  # ids, parents, times, attributes, events, links…
        assert (b.dropped_attributes, b.dropped_events, b.dropped_links) == (
            a.dropped_attributes, a.dropped_events, a.dropped_links)
        assert b.context.trace_state == a.context.trace_state
        assert b.parent == a.parent and b.resource == a.resource
        assert b.instrumentation_scope == a.instrumentation_scope
        assert got[CELL] == orig[CELL]
    rare = to_readable(back[-1])
    assert rare.dropped_attributes == 1 and rare.dropped_events == 1 and rare.dropped_links == 1
    assert rare.parent is not None and rare.parent.is_remote
    auto = next(to_readable(r) for r in back if r[3] == "auto-mode call")
    assert auto.attributes["raw"] == b"\x00\xffbytes" and auto.attributes["s"] == "x\udcff"
    assert sorted((c.number, c.name, sorted(c.tags.items())) for c in cells.values()) == [
        (12, "rag-eval", [("run", "1")]), (13, "cell [13]", [])]


@pytest.mark.parametrize("damage", [b"", b"not zlib", b"x\x9c\x03\x00"])
def test_a_torn_chunk_is_an_error_not_a_crash(damage: bytes) -> None:
    with pytest.raises(codec.ChunkError):
        codec.decode(damage)
    whole = codec.encode(join(recorded().collector.snapshot().items), {})
    with pytest.raises(codec.ChunkError):
        codec.decode(whole[: len(whole) // 2])


def test_the_store_file_is_private_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "store" / "spans.sqlite"
    store = Store(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    session = store.begin_session(1, "kernel-1", "a.ipynb")
    store.append(session, [(2, 10, 20, b"one"), (1, 30, 30, b"two")])
    (info,) = store.sessions()
    assert (info.kernel_id, info.notebook, info.spans, info.bytes) == ("kernel-1", "a.ipynb",
                                                                       3, 6)
    assert [d for _, d in store.chunks([session])] == [b"one", b"two"]
    assert store.sessions("b.ipynb") == []
    store.close()
    with sqlite3.connect(path) as conn:  # a newer llmtrace_nb wrote it
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer llmtrace_nb"):
        Store(path)
    (tmp_path / "text").write_text("not a database, " * 100)
    with pytest.raises(StoreError, match="cannot be used"):
        Store(tmp_path / "text")


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root writes anywhere: make it a file in the way
        locked.chmod(0o700)
        locked.rmdir()
        locked.write_text("a file, not a directory")
    with pytest.raises(OSError):
        Store(locked / "spans.sqlite")


def test_retention_drops_whole_sessions_oldest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    now = time.time_ns()
    ids = [store.begin_session(now - age * 86_400 * 10**9, None, "n.ipynb")
           for age in (40, 20, 10, 0)]
    for i in ids:
        store.append(i, [(1, None, None, b"x" * 1000)])
    with sqlite3.connect(store.path) as conn:  # as if last written long ago
        for i, age in zip(ids, (40, 20, 10, 0), strict=True):
            conn.execute("UPDATE sessions SET last_ns = ? WHERE id = ?",
                         (now - age * 86_400 * 10**9, i))
    assert store.prune(max_age_s=30 * 86_400, max_bytes=None) == 1
    assert [s.id for s in store.sessions()] == ids[1:]
    assert store.prune(max_age_s=None, max_bytes=2_000, keep=[ids[1]]) == 1
    assert [s.id for s in store.sessions()] == [ids[1], ids[3]]
    assert [d for _, d in store.chunks([ids[2]])] == []  # its chunks went with it


def test_the_writer_copies_new_records_and_restore_brings_them_back(tmp_path: Path) -> None:
    rec = recorded()
    store = Store(tmp_path / "s.sqlite")
    session = store.begin_session(time.time_ns(), "k", "nb.ipynb")
    writer = StoreWriter(rec.collector, store, session, content=lambda: True,
                         interval_s=3600)
    n = len(rec.collector)
    assert writer.flush() == n and writer.flush() == 0  # only what is new
    rec.span("later", openai_chat())
    assert writer.flush() == 1
    writer.close()
    fresh = SpanCollector(1000)
    done = restore(fresh, store, [session])
    assert (done.added, done.held, done.torn) == (n + 1, 0, 0)
    originals = {s.context.span_id: s for s, _ in rec.collector.snapshot().spans()}
    for span, cell in fresh.snapshot().spans():
        assert _fields(span) == _fields(originals[span.context.span_id])
        if span.name == "auto-mode call":
            assert cell is not None and (cell.number, cell.name) == (13, "cell [13]")
    assert restore(fresh, store, [session]).added == 0  # nothing twice


def test_content_off_keeps_no_text_in_the_store(tmp_path: Path) -> None:
    rec = Recorder()
    attrs = openai_chat()
    rec.span("chat", attrs | {"gen_ai.output.messages": '[{"role": "assistant", "parts": '
                                                         '[{"type": "text", "content": '
                                                         '"PARIS-SECRET-ANSWER"}]}]',
                              "http.request.header.authorization": ("Bearer sk-live-123",)})
    store = Store(tmp_path / "s.sqlite")
    session = store.begin_session(1, None, None)
    StoreWriter(rec.collector, store, session, content=lambda: False, interval_s=3600).close()
    records, _, _ = read_records(store, [session])
    kept = to_readable(records[0]).attributes
    assert "gen_ai.input.messages" not in kept and "gen_ai.output.messages" not in kept
    assert kept["gen_ai.usage.input_tokens"] == 100  # the numbers stay
    assert "sk-live-123" not in str(kept)
    history_frame(store, PriceBook())  # the columns history keeps, too
    assert store.frames([session])
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"PARIS-SECRET-ANSWER" not in raw and b"Capital of France" not in raw
    assert b"sk-live-123" not in raw


WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from opentelemetry.sdk.trace import TracerProvider
    from llmtrace_nb._capture.collector import SpanCollector
    from llmtrace_nb._keep.store import Store
    from llmtrace_nb._keep.writer import StoreWriter
    collector = SpanCollector(1_000_000)
    provider = TracerProvider()
    provider.add_span_processor(collector)
    tracer = provider.get_tracer("w")
    store = Store(sys.argv[1])
    writer = StoreWriter(collector, store, store.begin_session(time.time_ns(), sys.argv[2],
                         None), content=lambda: True, interval_s=0.2)
    n = 0
    deadline = time.time() + float(sys.argv[3])
    while time.time() < deadline:
        for _ in range(200):
            tracer.start_span("s", attributes={{"n": n}}).end()
            n += 1
        print(n, flush=True)
        time.sleep(0.01)
    writer.close()
    print("done", n, flush=True)
""")


def _writer(path: Path, name: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT)), str(path),
                             name, str(seconds)], stdout=subprocess.PIPE, text=True)


def test_kill_9_loses_at_most_the_last_second_and_the_store_opens(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    proc = _writer(path, "killed", 60)
    ended = 0
    started = time.monotonic()
    assert proc.stdout is not None
    while time.monotonic() - started < 3:
        ended = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(path)  # opens: the interrupted transaction, if any, is rolled back
    (info,) = store.sessions()
    records, _, torn = read_records(store, [info.id])
    assert torn == 0 and len(records) == info.spans
    # what was ended a second before the kill is in the store
    per_second = ended / 3
    assert ended - per_second <= info.spans <= ended + 200 * 10


def test_two_kernels_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    procs = [_writer(path, name, 2) for name in ("a", "b")]
    finals = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        finals.append(int(out.split()[-1]))
    store = Store(path)
    sessions = {s.kernel_id: s for s in store.sessions()}
    assert sorted(sessions) == ["a", "b"]
    for name, final in zip(("a", "b"), finals, strict=True):
        assert sessions[name].spans == final  # every span of each, nothing mixed
        records, _, torn = read_records(store, [sessions[name].id])
        assert torn == 0 and sorted(r[13]["n"] for r in records) == list(range(final))


def test_a_store_written_by_version_1_opens_and_restores(tmp_path: Path) -> None:
    """tests/fixtures/store-v1.sqlite: schema 1, chunk format 1, as the first release with
    a store wrote it. A later schema must keep reading it (migrate, never misread)."""
    path = tmp_path / "old.sqlite"
    path.write_bytes((ROOT / "tests" / "fixtures" / "store-v1.sqlite").read_bytes())
    store = Store(path)
    (info,) = store.sessions()
    assert (info.kernel_id, info.notebook, info.spans) == ("kernel-v1", "/fixtures/v1.ipynb", 9)
    collector = SpanCollector(100)
    done = restore(collector, store, [info.id])
    assert (done.added, done.torn) == (9, 0)
    names = sorted(span.name for span, _ in collector.snapshot().spans())
    assert names == ["agent step 1", "auto-mode call", "chat gpt-4o", "chat gpt-4o-mini",
                     "chat house-model", "execute_tool search", "rag-eval", "rare", "retrieve"]
    cells = {cell.name: cell.tags for _, cell in collector.snapshot().spans() if cell}
    assert cells == {"rag-eval": {"run": "1", "session": "1"},
                     "cell [13]": {"session": "1"}}


FORKED = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import llmtrace_nb
    llmtrace_nb.enable(store=sys.argv[1])
    with llmtrace_nb.span("parent before"):
        pass
    pid = os.fork()
    if pid == 0:  # exits normally: exit handlers run in the child too
        with llmtrace_nb.span("child"):
            pass
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    with llmtrace_nb.span("parent after"):
        pass
    print(status)
""")


def test_a_forked_child_never_writes_through_the_parents_store(tmp_path: Path) -> None:
    """SQLite forbids using a connection across fork: the child's spans stay in the
    child, the parent's all reach the store, and the child exits without hanging."""
    path = tmp_path / "s.sqlite"
    done = subprocess.run([sys.executable, "-c", FORKED.format(root=str(ROOT)), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr[-2000:]
    store = Store(path)
    (info,) = store.sessions()
    records, _, torn = read_records(store, [info.id])
    assert torn == 0 and sorted(r[3] for r in records) == ["parent after", "parent before"]


def test_a_damaged_chunk_is_skipped_and_counted(tmp_path: Path) -> None:
    rec = recorded()
    store = Store(tmp_path / "s.sqlite")
    session = store.begin_session(1, None, None)
    StoreWriter(rec.collector, store, session, content=lambda: True, interval_s=3600).close()
    store = Store(tmp_path / "s.sqlite")
    store.append(session, [(5, None, None, b"\x78\x9c damaged on disk")])
    done = restore(SpanCollector(100), store, [session])
    assert (done.added, done.torn) == (len(rec.collector), 1)
