"""OTLP JSON lines: save and load, lossless, with clear errors and nothing half-loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._capture.collector import CellRef
from llmtrace_nb._ship import files

from conftest import run
from docs import _tree
from spans import Recorder


def recorded() -> Recorder:
    rec = Recorder()
    _tree(rec, CellRef(number=12, name="rag-eval"))
    rec.span("auto-mode call", {"i": 7, "f": 1.5, "b": True, "s": "x", "sa": ("a", "b"),
                                "ia": (1, 2), "fa": (0.5, 1.5), "ba": (True, False)},
             cell=CellRef(number=13, name="cell [13]"))
    return rec


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    rec = recorded()
    entries = rec.collector.snapshot().spans()
    path = tmp_path / "spans.jsonl"
    assert files.save(path, entries) == len(entries)
    loaded = files.load(path)
    assert len(loaded.entries) == len(entries)
    for (orig, _), (back, _) in zip(entries, loaded.entries, strict=True):
        assert back.to_json() == orig.to_json()  # ids, parents, times, attributes, events…
        assert back.start_time == orig.start_time and back.end_time == orig.end_time
        assert dict(back.attributes) == dict(orig.attributes)
        assert [type(v) for v in back.attributes.values()] == [
            type(v) for v in orig.attributes.values()]
        assert back.resource.attributes == orig.resource.attributes
        assert back.instrumentation_scope == orig.instrumentation_scope
    cells = {c.number for _, c in loaded.entries if c is not None}
    assert 13 in cells  # the auto-mode span kept its cell...
    auto = next(s for s, _ in loaded.entries if s.name == "auto-mode call")
    assert "llmtrace.cell.number" not in auto.attributes  # ...without a trace in its attributes


def test_file_is_otlp_json_as_the_collector_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    files.save(path, recorded().collector.snapshot().spans())
    line = json.loads(path.read_text().splitlines()[0])
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and int(span["traceId"], 16)  # hex, not base64
    assert len(span["spanId"]) == 16 and isinstance(span["kind"], int)


@pytest.mark.parametrize(("content", "message"), [
    ('{"resourceSpans": []}\n{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"',
     "line 2"),
    ("not json at all\n", "line 1"),
    ('{"something": "else"}\n', "line 1: not an OTLP traces export"),
    ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "abcd", "spanId": '
     '"0102030405060708"}]}]}]}\n',
     r"line 1: resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId: must be 16 bytes"),
])
def test_bad_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(files.TraceFileError, match=message):
        files.load(path)


def test_magics_save_load_and_nothing_half_loaded(shell: InteractiveShell,
                                                  tmp_path: Path) -> None:
    run(shell, "%%trace saved --quiet\nimport llmtrace_nb\n"
               "with llmtrace_nb.span('step', kind='tool'): pass")
    path = tmp_path / "session.jsonl"
    _, out = run(shell, f"%llmtrace save {path}")
    assert "wrote 2 spans" in out.text
    good = path.read_text()
    path.write_text(good + good[: len(good) // 2])  # a truncated second line
    before = len(llmtrace_nb.spans_df())
    _, out = run(shell, f"%llmtrace load {path}")
    assert "line 2" in out.text + out.stderr and len(llmtrace_nb.spans_df()) == before
    _, out = run(shell, f"%llmtrace load {tmp_path / 'missing.jsonl'}")
    assert "No such file" in out.text + out.stderr
    _, out = run(shell, f"%llmtrace save {tmp_path}")
    assert "is a directory" in out.text + out.stderr


def test_load_in_a_fresh_process_feeds_frames_and_views(shell: InteractiveShell,
                                                        demo_server: object,
                                                        tmp_path: Path) -> None:
    import openai

    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url,  # type: ignore[attr-defined]
                                            api_key="k")
    run(shell, "%%trace before restart --quiet --tag run=1\n"
               "client.chat.completions.create(model='gpt-4o-mini', messages=[\n"
               "    {'role': 'user', 'content': 'hello [cached]'}])")
    path = tmp_path / "s.jsonl"
    llmtrace_nb.save(path)
    original = llmtrace_nb.spans_df().drop(columns=["cell"])
    code = textwrap.dedent(f"""
        import json, llmtrace_nb
        n = llmtrace_nb.load({str(path)!r})
        df = llmtrace_nb.spans_df().drop(columns=["cell"])
        view = llmtrace_nb.view("before restart")
        print(json.dumps({{"n": n, "records": df.astype(str).to_dict("records"),
                          "cells": llmtrace_nb.cells_df()[["cell_name", "tags"]].astype(str)
                          .to_dict("records"),
                          "calls": view.document["totals"]["llm_calls"]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n"] == 2 and out["calls"] == 1
    for back, orig in zip(out["records"], original.astype(str).to_dict("records"),
                          strict=True):
        assert {k: v for k, v in back.items() if str(v) != str(orig[k])} == {}
    assert out["cells"] == [{"cell_name": "before restart", "tags": "{'run': '1'}"}]


def test_saved_files_hold_no_secrets_and_no_content_when_capture_is_off(
        shell: InteractiveShell, tmp_path: Path) -> None:
    secret = "sk-proj-SAVEDSECRETKEY1234567890"
    run(shell, "%%trace --quiet\nfrom opentelemetry import trace\n"
               "with trace.get_tracer('t').start_as_current_span('openai.chat', attributes={\n"
               "    'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o',\n"
               f"    'gen_ai.headers': \"{{'Authorization': 'Bearer {secret}'}}\",\n"
               "    'gen_ai.input.messages': 'the private prompt'}): pass")
    path = tmp_path / "s.jsonl"
    llmtrace_nb.save(path)
    text = path.read_text()
    assert secret not in text and "[REDACTED]" in text and "the private prompt" in text
    run(shell, "%llmtrace content off")
    llmtrace_nb.save(path)
    assert "the private prompt" not in path.read_text()
