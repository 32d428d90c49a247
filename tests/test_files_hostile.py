"""Hostile files: what `load` refuses, what it names, and what `save` never exposes.

Whatever a file holds, loading it either works or raises ``TraceFileError`` naming the
line (and the field) with nothing loaded; it never blocks, never reads without bound, and
what it loads never breaks a frame or a view. Saving keeps the mode of the file it
replaces, makes new files private, and never lets its temp file be more readable.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import stat
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._capture.collector import CellRef
from llmtrace_nb._ship import files

from conftest import run
from spans import Recorder

TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT_ID, CHILD_ID = "b7ad6b7169203331", "00f067aa0ba902b7"
START = 1_700_000_000_000_000_000


def value(v: Any) -> dict[str, Any]:
    """An OTLP/JSON AnyValue; a dict is taken as one already."""
    if isinstance(v, dict):
        return v
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    return {"stringValue": v}


def span(span_id: str, name: str, attrs: dict[str, Any], parent: str | None = None,
         **extra: Any) -> dict[str, Any]:
    out = {"traceId": TRACE, "spanId": span_id, "name": name, "kind": 1,
           "startTimeUnixNano": str(START), "endTimeUnixNano": str(START + 10**9),
           "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()], **extra}
    if parent:
        out["parentSpanId"] = parent
    return out


def line(*spans: dict[str, Any] | None) -> str:
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [
        {"scope": {"name": "tests"}, "spans": list(spans)}]}]})


def cell_file(**root_attrs: Any) -> str:
    """A %%trace cell: a child span and its cell root (attributes overridable)."""
    attrs = {"llmtrace.kind": "cell", "llmtrace.cell.name": "my cell",
             "llmtrace.cell.number": 4, "llmtrace.tag.run": "1", **root_attrs}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    return (line(span(CHILD_ID, "step", {"llmtrace.kind": "tool"}, parent=ROOT_ID)) + "\n"
            + line(span(ROOT_ID, "my cell", attrs)) + "\n")


GOOD = line(span(CHILD_ID, "step", {"llmtrace.kind": "tool"}))


@pytest.fixture
def session(shell: InteractiveShell) -> Iterator[InteractiveShell]:
    """The shell with one traced cell already collected (so 'nothing loaded' can be seen)."""
    run(shell, "%%trace before --quiet\nimport llmtrace_nb\n"
               "with llmtrace_nb.span('step', kind='tool'): pass")
    yield shell


def assert_nothing_loaded(path: Path, match: str) -> None:
    before = len(llmtrace_nb.spans_df())
    with pytest.raises(files.TraceFileError, match=match):
        llmtrace_nb.load(path)
    assert len(llmtrace_nb.spans_df()) == before


# -- files that are not regular files ---------------------------------------------------------


def test_a_fifo_is_refused_at_once(session: InteractiveShell, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException | int] = []

    def load() -> None:
        try:
            outcome.append(llmtrace_nb.load(fifo))
        except BaseException as exc:  # reported to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # blocked opening the FIFO: give it a writer and EOF to end it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
        pytest.fail("load blocked on a FIFO")
    assert isinstance(outcome[0], files.TraceFileError), outcome
    assert "FIFO" in str(outcome[0]) and "not a regular file" in str(outcome[0])
    # and from the magic: one clear line, nothing loaded
    before = len(llmtrace_nb.spans_df())
    _, out = run(session, f"%llmtrace load {fifo}")
    assert "FIFO" in out.text + out.stderr and len(llmtrace_nb.spans_df()) == before


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused_without_reading_it() -> None:
    # In a child with a memory cap and a timeout: reading /dev/zero must not even start.
    code = textwrap.dedent("""
        import resource, time
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from llmtrace_nb._ship import files
        t = time.monotonic()
        try:
            files.load("/dev/zero")
        except files.TraceFileError as exc:
            print("refused", round(time.monotonic() - t, 3), exc)
        except MemoryError:
            print("MemoryError")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.startswith("refused"), (proc.stdout, proc.stderr[-2000:])
    seconds = float(proc.stdout.split()[1])
    assert seconds < 1 and "character device" in proc.stdout and "not a regular file" in proc.stdout


def test_a_directory_is_refused(session: InteractiveShell, tmp_path: Path) -> None:
    assert_nothing_loaded(tmp_path, "is a directory, not a regular file")


# -- line bound -------------------------------------------------------------------------------


def test_a_line_over_the_bound_is_an_error_naming_it(session: InteractiveShell, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_LINE_BYTES", 4096)
    path = tmp_path / "long.jsonl"
    path.write_text(GOOD + "\n" + " " * 5000 + GOOD + "\n")
    assert_nothing_loaded(path, r"line 2: longer than 4 KiB")
    # a line of exactly the bound is read
    path.write_text(GOOD + "\n" + " " * (4096 - len(GOOD)) + GOOD + "\n" + GOOD)
    assert len(files.load(path).entries) == 3


def test_an_endless_line_is_not_held_in_memory(tmp_path: Path) -> None:
    """A regular file of zeros with no newline (/dev/zero copied, sparse): refused at the
    bound, holding no more than the bound while reading."""
    path = tmp_path / "zeros.jsonl"
    with path.open("wb") as f:
        f.truncate(files.MAX_LINE_BYTES + (32 << 20))
    tracemalloc.start()
    try:
        with pytest.raises(files.TraceFileError, match=r"line 1: longer than 64 MiB"):
            files.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < files.MAX_LINE_BYTES + (4 << 20), f"peak {peak / 2**20:.0f} MiB"


# -- content that is not OTLP JSON text -----------------------------------------------------


def test_deeply_nested_json_names_the_line(session: InteractiveShell, tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(GOOD + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_nothing_loaded(path, r"line 2: nested too deeply")
    path.write_text(GOOD + "\n" + '{"resourceSpans": ' + "[" * 100_000 + "\n")
    assert_nothing_loaded(path, r"line 2: nested too deeply")


def test_deeply_nested_attribute_values_name_the_line(session: InteractiveShell,
                                                      tmp_path: Path) -> None:
    nested: dict[str, Any] = {"stringValue": "x"}
    for _ in range(300):
        nested = {"arrayValue": {"values": [nested]}}
    path = tmp_path / "deep.jsonl"
    path.write_text(GOOD + "\n" + line(span(ROOT_ID, "s", {"a": nested})) + "\n")
    assert_nothing_loaded(path, r"line 2: .*too deep")


@pytest.mark.parametrize(("content", "match"), [
    (GOOD.encode() + b"\n" + GOOD.encode()[:10] + b"\xff\xfe" + GOOD.encode()[10:],
     r"line 2: not UTF-8 text \(byte 0xff at column 11\)"),
    (gzip.compress((GOOD + "\n").encode() * 50)[:60], r"line 1: gzip-compressed"),
    (bytes(random.Random(7).randrange(256) for _ in range(20_000)), r"line \d+: "),
    (b"\x28\xb5\x2f\xfd" + bytes(100), r"line 1: zstd-compressed"),
    (b"\x00" * 100 + b"\n", r"line 1: not JSON"),
])
def test_binary_and_non_utf8_files_name_the_line(session: InteractiveShell, tmp_path: Path,
                                                 content: bytes, match: str) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_bytes(content)
    assert_nothing_loaded(path, match)


def test_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (GOOD + "\n").encode())
    assert len(files.load(path).entries) == 1


# -- bad values are named: line and field ---------------------------------------------------

_S = re.escape("resourceSpans[0].scopeSpans[0].spans[0]")


@pytest.mark.parametrize(("bad", "match"), [
    (span("zz", "s", {}), rf"line 2: {_S}\.spanId: not a hex id"),
    ({**span(ROOT_ID, "s", {}), "traceId": "0102"}, rf"line 2: {_S}\.traceId: must be 16 bytes"),
    (span(ROOT_ID, "s", {}, parent="xyz"), rf"line 2: {_S}\.parentSpanId: not a hex id"),
    (span(ROOT_ID, "s", {}, links=[{"traceId": TRACE, "spanId": "01"}]),
     rf"line 2: {_S}\.links\[0\]\.spanId: must be 8 bytes"),
    ({**span(ROOT_ID, "s", {}), "startTimeUnixNano": "soon"}, r"line 2: .*startTimeUnixNano"),
    ({**span(ROOT_ID, "s", {}), "kind": "weird"}, rf"line 2: {_S}\.kind"),
    (span(ROOT_ID, "s", {"n": {"intValue": "many"}}), r"line 2: .*intValue"),
    ({**span(ROOT_ID, "s", {}), "name": 5}, r"line 2: .*name"),
    # protobuf reads a null as an empty span: ids of zero, which nothing downstream expects
    (None, rf"line 2: {_S}: not an object \(null\)"),
    (span(ROOT_ID, "s", {}, links=[None]), rf"line 2: {_S}\.links\[0\]: not an object"),
    ({**span(ROOT_ID, "s", {}), "traceId": "0" * 32}, rf"line 2: {_S}\.traceId: all zeros"),
    # uint64 in OTLP, but past 2262 no DataFrame holds it (spans_df raised OverflowError)
    ({**span(ROOT_ID, "s", {}), "endTimeUnixNano": str(2**64 - 1)},
     rf"line 2: {_S}\.endTimeUnixNano: 18446744073709551615 ns is past the year 2262"),
    (span(ROOT_ID, "s", {}, events=[{"name": "e", "timeUnixNano": str(2**63)}]),
     rf"line 2: {_S}\.events\[0\]\.timeUnixNano: .* past the year 2262"),
])
def test_bad_values_name_the_line_and_the_field(session: InteractiveShell, tmp_path: Path,
                                                bad: dict[str, Any] | None, match: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + line(bad) + "\n" + GOOD + "\n")
    assert_nothing_loaded(path, match)


# -- cell attributes of the wrong type: named, fallen back, never breaking a view ------------


def _root_row() -> Any:
    df = llmtrace_nb.spans_df()
    return df[df["kind"] == "cell"].iloc[-1]


def _check_views() -> None:
    view = llmtrace_nb.view()
    view.html()
    view._repr_mimebundle_()
    repr(view)
    llmtrace_nb.cells_df()
    llmtrace_nb.status()


@pytest.mark.parametrize("name", [
    {"intValue": "5"}, {"doubleValue": 1.5}, {"boolValue": True}, {"bytesValue": "AAE="},
    {"arrayValue": {"values": [{"stringValue": "a"}]}},
    {"kvlistValue": {"values": [{"key": "a", "value": {"stringValue": "b"}}]}},
])
def test_a_cell_name_that_is_not_text_is_named_and_falls_back(
        shell: InteractiveShell, tmp_path: Path, name: dict[str, Any]) -> None:
    path = tmp_path / "cell.jsonl"
    path.write_text(cell_file(**{"llmtrace.cell.name": name}))
    assert llmtrace_nb.load(path) == 2
    _check_views()  # AttributeError before: the name reached the view as an int
    cell = llmtrace_nb._notebook.api._source().collector.cells()[-1]
    assert cell.name == "my cell" and cell.number == 4 and cell.tags == {"run": "1"}
    assert llmtrace_nb.view("my cell").document["name"] == "my cell"
    assert _root_row()["attributes"]["llmtrace.unreadable"] == "llmtrace.cell.name"


@pytest.mark.parametrize("number", [
    {"stringValue": "4"}, {"boolValue": True}, {"doubleValue": 4.0}, {"intValue": "-1"},
    {"arrayValue": {"values": [{"intValue": "4"}]}}, {"bytesValue": "BA=="},
])
def test_a_cell_number_that_is_not_a_count_is_named(shell: InteractiveShell, tmp_path: Path,
                                                    number: dict[str, Any]) -> None:
    path = tmp_path / "cell.jsonl"
    path.write_text(cell_file(**{"llmtrace.cell.number": number}))
    assert llmtrace_nb.load(path) == 2
    _check_views()
    cell = llmtrace_nb._notebook.api._source().collector.cells()[-1]
    assert cell.number is None and cell.name == "my cell"
    assert _root_row()["attributes"]["llmtrace.unreadable"] == "llmtrace.cell.number"


def test_tags_of_other_types_are_text_or_named(shell: InteractiveShell, tmp_path: Path) -> None:
    path = tmp_path / "cell.jsonl"
    path.write_text(cell_file(**{
        "llmtrace.tag.n": 3, "llmtrace.tag.ok": True, "llmtrace.tag.f": {"doubleValue": 0.5},
        "llmtrace.tag.list": {"arrayValue": {"values": [{"stringValue": "a"}]}},
        "llmtrace.tag.map": {"kvlistValue": {"values": []}}, "llmtrace.tag.raw": {
            "bytesValue": "AAE="}, "llmtrace.tag.none": {}}))
    assert llmtrace_nb.load(path) == 2
    _check_views()
    cell = llmtrace_nb._notebook.api._source().collector.cells()[-1]
    assert cell.tags == {"run": "1", "n": "3", "ok": "True", "f": "0.5"}
    assert _root_row()["attributes"]["llmtrace.unreadable"] == (
        "llmtrace.tag.list,llmtrace.tag.map,llmtrace.tag.raw,llmtrace.tag.none")


def test_a_bad_auto_mode_stamp_is_named_and_falls_back(shell: InteractiveShell,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "auto.jsonl"
    path.write_text(line(span(CHILD_ID, "call", {
        "llmtrace.kind": "tool", "llmtrace.cell.number": 7,
        "llmtrace.cell.name": {"arrayValue": {"values": []}}})) + "\n"
        + line(span(ROOT_ID, "call 2", {"llmtrace.cell.number": True,
                                         "llmtrace.cell.name": "x"})) + "\n")
    assert llmtrace_nb.load(path) == 2
    loaded = files.load(path)
    (first, cell), (second, none) = loaded.entries
    assert cell is not None and cell.number == 7 and cell.name == "cell [7]"
    assert first.attributes["llmtrace.unreadable"] == "llmtrace.cell.name"
    assert none is None and second.attributes["llmtrace.unreadable"] == "llmtrace.cell.number"
    assert "llmtrace.cell.number" not in first.attributes
    llmtrace_nb.spans_df()
    llmtrace_nb.cells_df()


def test_an_unreadable_mark_already_in_the_file_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "cell.jsonl"
    path.write_text(cell_file(**{"llmtrace.cell.name": 5, "llmtrace.unreadable": "x.y"}))
    root = files.load(path).entries[1][0]
    assert root.attributes["llmtrace.unreadable"] == "x.y,llmtrace.cell.name"
    path.write_text(cell_file(**{"llmtrace.cell.name": 5,
                                 "llmtrace.unreadable": "llmtrace.cell.name"}))
    root = files.load(path).entries[1][0]
    assert root.attributes["llmtrace.unreadable"] == "llmtrace.cell.name"


# -- save: modes, temp file, symlinks, line bound -------------------------------------------


def entries() -> list[tuple[Any, CellRef | None]]:
    rec = Recorder()
    for i in range(3):
        rec.span(f"span {i}", {"i": i, "text": "x" * 2000}, cell=CellRef(number=1, name="c"))
    return rec.collector.snapshot().spans()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("before", [0o600, 0o640, 0o644, 0o400])
def test_save_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path, before: int) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("old")
    path.chmod(before)
    files.save(path, entries())
    assert mode(path) == before and len(files.load(path).entries) == 3


def test_save_creates_new_files_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        files.save(tmp_path / "new.jsonl", entries())
    finally:
        os.umask(old)
    assert mode(tmp_path / "new.jsonl") == 0o600


@pytest.mark.parametrize("before", [None, 0o600, 0o644, 0o200])
def test_the_temp_file_is_never_more_readable_than_the_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: int | None) -> None:
    path = tmp_path / "s.jsonl"
    if before is not None:
        path.write_text("old")
        path.chmod(before)
    seen: list[tuple[str, int]] = []

    def others() -> None:
        seen.extend((p.name, mode(p)) for p in tmp_path.iterdir() if p.name != path.name)

    real_lines, real_replace = files.encode_lines, os.replace

    def lines(*args: Any, **kwargs: Any) -> Iterator[str]:
        for text in real_lines(*args, **kwargs):
            others()
            yield text
        others()

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        others()
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(files, "encode_lines", lines)
    monkeypatch.setattr(os, "replace", replace)
    files.save(path, entries())
    result = mode(path)
    assert seen and all(m & ~result == 0 for _, m in seen), (oct(result), seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl"]


@pytest.mark.skipif(not hasattr(os, "fchown"), reason="no owners here")
def test_a_group_that_cannot_be_kept_takes_its_permissions_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing a 0640 file of group 'team' we are not in: the result, in our group,
    must not give our group what was 'team''s."""
    path = tmp_path / "s.jsonl"
    path.write_text("old")
    path.chmod(0o640)
    other_gid = os.stat(path).st_gid + 4242
    try:
        os.chown(path, -1, other_gid)
    except PermissionError:
        pytest.skip("cannot give a file another group here")

    def refused(*args: Any) -> None:
        raise PermissionError("not a member")

    monkeypatch.setattr(os, "fchown", refused)
    files.save(path, entries())
    assert os.stat(path).st_gid != other_gid and mode(path) == 0o600


def test_a_failed_save_leaves_the_old_file_and_no_temp(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("old")
    path.chmod(0o600)

    def broken(*args: Any, **kwargs: Any) -> Iterator[str]:
        yield "{}"
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(files, "encode_lines", broken)
    with pytest.raises(RuntimeError):
        files.save(path, entries())
    assert path.read_text() == "old" and mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["s.jsonl"]


def test_save_writes_through_a_symlink_keeping_it(tmp_path: Path) -> None:
    real = tmp_path / "runs" / "run-5.jsonl"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(Path("runs") / "run-5.jsonl")
    files.save(link, entries())
    assert link.is_symlink() and os.readlink(link) == str(Path("runs") / "run-5.jsonl")
    assert len(files.load(real).entries) == 3 and mode(real) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["run-5.jsonl"]
    # a dangling link makes the file it names, private
    dangling = tmp_path / "next.jsonl"
    dangling.symlink_to(Path("runs") / "run-6.jsonl")
    files.save(dangling, entries())
    assert dangling.is_symlink() and mode(real.parent / "run-6.jsonl") == 0o600


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to make a symlink owned by someone else")
def test_save_refuses_a_planted_symlink_in_a_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = shared / "run.jsonl"
    link.symlink_to(victim)
    os.lchown(link, 4242, 4242)
    with pytest.raises(files.TraceFileError, match="symlink owned by another user"):
        files.save(link, entries())
    assert victim.read_text() == "precious" and link.is_symlink()


def test_save_refuses_to_replace_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(files.TraceFileError, match=r"is a FIFO \(named pipe\), not a regular file"):
        files.save(fifo, entries())
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.jsonl"]


def test_saved_lines_stay_under_the_bound(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_LINE_BYTES", 16_000)
    rec = Recorder()
    for i in range(40):
        rec.span(f"span {i}", {"text": "é" * 1000})
    spans = rec.collector.snapshot().spans()
    path = tmp_path / "s.jsonl"
    files.save(path, spans)
    sizes = [len(raw) for raw in path.read_bytes().splitlines()]
    assert len(sizes) > 1 and max(sizes) <= 16_000
    back = files.load(path).entries
    assert [s.to_json() for s, _ in back] == [s.to_json() for s, _ in spans]
    # one span bigger than a line may be: an error naming it, the old file kept
    rec.span("huge", {"text": "x" * 20_000})
    with pytest.raises(files.TraceFileError, match=r"span 'huge'.*more than a line may hold"):
        files.save(path, rec.collector.snapshot().spans())
    assert len(files.load(path).entries) == 40
    assert [p.name for p in tmp_path.iterdir()] == ["s.jsonl"]
