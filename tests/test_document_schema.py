"""The trace document has one schema, llmtrace_nb/_shape/trace_document.schema.json, and
both sides follow it: what document.py builds validates against it (documents made by the
real code, from a %%trace run through the displayed MIME bundle and from spans), the
renderer's TypeScript types are the ones generated from it (the committed file is what
`npm run build:types` writes now), and a broken document fails it."""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from llmtrace_nb._notebook import session
from llmtrace_nb._read import semconv
from llmtrace_nb._shape import document, frames, schema
from llmtrace_nb.demo import DemoServer

import docs
from conftest import run
from spans import Recorder, openai_chat

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "labextension" / "src" / "document.generated.ts"


def wire(doc: dict[str, Any]) -> Any:
    """The document as it travels: JSON text, read back (tuples become lists)."""
    return json.loads(document.to_json(doc))


def assert_valid(doc: dict[str, Any]) -> None:
    found = schema.problems(wire(doc))
    assert not found, "\n".join(found)


# -- the schema itself ------------------------------------------------------------------


def test_the_schema_is_valid_json_schema_and_matches_the_code_constants() -> None:
    from jsonschema import Draft202012Validator

    s = schema.schema()
    Draft202012Validator.check_schema(s)
    assert s["properties"]["version"]["const"] == document.VERSION
    assert s["$defs"]["SpanKind"]["enum"] == list(semconv.KINDS)
    # "unset" is never written: a span without a status key is unset
    assert s["$defs"]["SpanStatus"]["enum"] == [x for x in frames.STATUSES if x != "unset"]
    span_keys = set(s["$defs"]["Span"]["properties"])
    assert span_keys == {*document.SPAN_FIELDS, "depth", "start_ms", "duration_ms",
                         "input_messages", "output_messages", "attributes", "truncated",
                         "detail", "evaluations", "tool"}
    assert set(s["$defs"]["Span"]["required"]) == set(document._ALWAYS)


# -- (a) documents built by the real code validate --------------------------------------


@pytest.mark.parametrize("make", [docs.agent_doc, docs.xss_doc, docs.empty_doc,
                                  docs.framework_doc], ids=lambda f: f.__name__)
def test_the_test_documents_validate(make: Any) -> None:
    """The documents the renderer's jest tests render (streamed call, tool span, error,
    unpriced model, duplicate span of one call, hostile strings, an empty cell)."""
    assert_valid(make())


def test_bounded_documents_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past every bound: spans past max_spans (omitted), texts past max_text (truncated),
    details past the size budget (detail: omitted)."""
    rec = Recorder()
    rec.span("llm", openai_chat(inp=10, out=2) | {
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
            {"type": "text", "content": "x" * 500}]}])}, error="Boom")  # detail first
    for i in range(30):
        rec.span(f"call {i}", openai_chat(inp=10, out=2, reasoning=3, cached=1),
                 start=1_700_000_000_000_000_000 + i)
    df = rec.frames.spans()
    monkeypatch.setattr(document, "SIZE_TARGET", 0)
    monkeypatch.setattr(document, "MIN_DETAIL_BUDGET", 1)
    doc = document.build(df, name="bounded", cell=3, max_spans=20, max_text=50)
    assert doc["omitted"]["spans"] == 11
    assert any(s.get("detail") == "omitted" for s in doc["spans"])
    assert any(s.get("truncated") for s in doc["spans"])
    assert_valid(doc)
    monkeypatch.undo()
    doc = document.build(df, name="bounded", cell=3, max_text=50)
    assert doc["omitted"] is None and any(s.get("truncated") for s in doc["spans"])
    assert_valid(doc)


def test_a_document_with_evicted_spans_and_no_cell_number_validates() -> None:
    rec = Recorder()
    rec.span("llm", openai_chat())
    doc = document.build(rec.frames.spans(), name="x", cell=None, open_spans=2,
                         evicted={"spans": 5, "uncounted": 1, "llm_calls": 4,
                                  "input_tokens": 40, "cost_usd": 0.5})
    assert doc["evicted"] == {"spans": 5, "uncounted": 1} and doc["open"] is True
    assert_valid(doc)


@pytest.fixture
def clients(shell: InteractiveShell, demo_server: DemoServer) -> InteractiveShell:
    import openai

    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url,
                                            api_key="sk-demo", max_retries=0)
    shell.user_ns["demo_server"] = demo_server
    demo_server.set_latency(0.0)
    return shell


def shown_document(clients: InteractiveShell, source: str) -> dict[str, Any]:
    """The trace document a %%trace cell displayed, from its MIME bundle."""
    _, out = run(clients, source)
    bundles = [b[document.MIME_TYPE] for b in out.bundles if document.MIME_TYPE in b]
    assert len(bundles) == 1, out.text
    return bundles[0]


ASK = ("client.chat.completions.create(model='gpt-4o-mini', "
       "messages=[{'role': 'user', 'content': 'Capital of France?'}]{extra})\n")
TOOLS = ("[{'type': 'function', 'function': {'name': 'get_weather', 'parameters': "
         "{'type': 'object', 'properties': {'city': {'type': 'string'}}, "
         "'required': ['city']}}}]")
CELLS = {
    "plain call": "%%trace plain\n" + ASK.replace("{extra}", ""),
    "streamed call": "%%trace streamed\nlist(" + ASK.replace(
        "{extra}", ", stream=True, stream_options={'include_usage': True}").rstrip() + ")\n",
    "tool call and tool span": "%%trace tools\nimport llmtrace_nb\n" + ASK.replace(
        "{extra}", ", tools=" + TOOLS) +
        "with llmtrace_nb.span('get_weather', kind='tool'):\n    pass\n",
    "failed call": "%%trace failing\nimport openai\ndemo_server.fail_next(429)\ntry:\n    "
                   + ASK.replace("{extra}", "") + "except openai.RateLimitError:\n    pass\n",
    "failed cell": "%%trace raising\n" + ASK.replace("{extra}", "") + "1 / 0\n",
    "empty cell": "%%trace nothing\npass\n",
}


@pytest.mark.parametrize("case", list(CELLS))
def test_documents_of_traced_cells_validate(clients: InteractiveShell, case: str) -> None:
    doc = shown_document(clients, CELLS[case])
    assert_valid(doc)
    kinds = {s["kind"] for s in doc["spans"]}
    if case == "streamed call":
        assert any(s.get("is_streaming") for s in doc["spans"])
    if case == "tool call and tool span":
        assert "tool" in kinds and any(
            m.get("tool_calls") for s in doc["spans"] for m in s.get("output_messages", []))
    failed = {s["kind"] for s in doc["spans"] if s.get("status") == "error"}
    if case == "failed call":
        assert failed == {"llm"} and doc["totals"]["errors"] == 1
    if case == "failed cell":
        assert failed == {"cell"}
    if case == "empty cell":
        assert kinds == {"cell"}


def test_content_off_document_validates(clients: InteractiveShell) -> None:
    sess = session.require()
    sess.set_capture_content(False)
    doc = shown_document(clients, CELLS["plain call"])
    assert not any("input_messages" in s or "output_messages" in s for s in doc["spans"])
    assert_valid(doc)


def test_evicted_and_open_documents_validate(clients: InteractiveShell) -> None:
    sess = session.require()
    sess.collector.resize(20)
    try:
        doc = shown_document(clients, "%%trace many\nimport llmtrace_nb\n"
                                      "for i in range(60):\n"
                                      "    with llmtrace_nb.span(f's{i}'): pass\n")
    finally:
        sess.collector.resize(100_000)
    assert doc["evicted"] is not None
    assert_valid(doc)
    release = threading.Event()
    clients.user_ns["release"] = release
    try:
        doc = shown_document(clients, "%%trace background\nimport threading, llmtrace_nb\n"
                                      "def late():\n"
                                      "    with llmtrace_nb.span('late', kind='tool'):\n"
                                      "        release.wait(10)\n"
                                      "bg = threading.Thread(target=late); bg.start()\n")
    finally:
        release.set()
        clients.user_ns["bg"].join()
    assert doc["open"] is True and doc["open_spans"] == 1
    assert_valid(doc)


# Attribute values the dialects read, as odd as OpenTelemetry lets them be.
_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(
    ["nan", "-3", "1e400", "[{\"role\":", "\udcff\ud800 lone", '[{"role": "user"}]']))
_VALUE = st.one_of(_TEXT, st.integers(-(2**63), 2**63 - 1), st.booleans(),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.lists(_TEXT, max_size=3).map(tuple))
_KEYS = [k for keys in semconv.FIELD_KEYS.values() for k in keys] + [
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.operation.name",
    "openinference.span.kind", "llm.input_messages.0.message.role",
    "llm.input_messages.0.message.tool_call_id", "gen_ai.tool.call.arguments", "other"]
_MESSAGES = st.lists(st.fixed_dictionaries({"role": _TEXT}, optional={
    "content": st.one_of(_TEXT, st.none()), "name": _VALUE, "tool_call_id": _VALUE,
    "finish_reason": _VALUE, "tool_calls": st.lists(st.fixed_dictionaries(
        {}, optional={"id": _VALUE, "name": _VALUE, "arguments": _VALUE}), max_size=2)}),
    max_size=3).map(lambda m: json.dumps(m, allow_nan=True))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUE, max_size=10), _MESSAGES,
       st.booleans(), st.integers(1, 200))
def test_any_span_gives_a_valid_document(attrs: dict[str, Any], messages: str,
                                         failed: bool, max_text: int) -> None:
    # max_text from 1: ids, kind and status are never cut (the tree and the schema's
    # enums hold), every other text is
    rec = Recorder()
    rec.span("fuzz", {**attrs, "gen_ai.output.messages": messages},
             error="Boom" if failed else None)
    doc = document.build(rec.frames.spans(), name="fuzz", cell=1, max_text=max_text)
    assert_valid(doc)
    assert all(len(s["span_id"]) == 16 for s in doc["spans"])


# -- (b) the TypeScript types are generated from the schema, and up to date -------------


def _json2ts() -> Path:
    json2ts = ROOT / "node_modules" / ".bin" / "json2ts"
    if not json2ts.exists():
        npm = shutil.which("npm")
        if npm is None:
            if os.environ.get("CI"):
                pytest.fail("npm not found (CI is set, so the generated types must be checked)")
            pytest.skip("npm not found: install Node.js 20+ to check the generated TS types")
        subprocess.run([npm, "ci"], cwd=ROOT, check=True, capture_output=True)
    return json2ts


def test_the_generated_typescript_is_up_to_date(tmp_path: Path) -> None:
    """The committed document.generated.ts is what `npm run build:types` writes now: run
    the script's own command line, with the output sent to a temporary file."""
    script = json.loads((ROOT / "package.json").read_text())["scripts"]["build:types"]
    args = shlex.split(script)
    assert args[0] == "json2ts" and args[args.index("-i") + 1] == (
        "llmtrace_nb/_shape/trace_document.schema.json")
    out_at = args.index("-o") + 1
    assert ROOT / args[out_at] == GENERATED
    fresh = tmp_path / "document.generated.ts"
    args[0], args[out_at] = str(_json2ts()), str(fresh)
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert fresh.read_text() == GENERATED.read_text(), (
        "labextension/src/document.generated.ts is stale: run `npm run build:types`")


def test_the_renderer_takes_its_types_from_the_generated_file() -> None:
    """No hand-written copy of the document's shape is left in the renderer: document.ts
    imports the generated types and derives its own from them."""
    source = (ROOT / "labextension" / "src" / "document.ts").read_text()
    assert "from './document.generated'" in source
    interfaces = [line for line in source.splitlines() if line.startswith("export interface")]
    assert interfaces == ["export interface ParseResult {"]  # the parser's, not the document's
    for name in ("TraceDocumentJson", "SpanJson", "TotalsJson", "MessageJson"):
        assert f"export interface {name} " in GENERATED.read_text()


# -- (c) a broken document fails ---------------------------------------------------------


def _break(doc: dict[str, Any], how: str) -> None:
    llm = next(s for s in doc["spans"] if s["kind"] == "llm")
    match how:
        case "a required key missing":
            del doc["totals"]["errors"]
        case "an unknown key":
            doc["spans"][0]["colour"] = "red"
        case "a kind not in the schema":
            doc["spans"][0]["kind"] = "robot"
        case "a status written as unset":
            llm["status"] = "unset"
        case "a count as text":
            llm["input_tokens"] = "12"
        case "a negative count":
            doc["totals"]["llm_calls"] = -1
        case "another version":
            doc["version"] = 2
        case "false written out":
            llm["is_streaming"] = False
        case "a message without content":
            del llm["input_messages"][0]["content"]
        case "detail omitted and messages too":
            llm["detail"] = "omitted"
        case "open but no open spans":
            doc["open"] = True
        case "a null name":
            doc["name"] = None
        case "a nested attribute":
            llm["attributes"]["nested"] = {"a": 1}


BREAKS = ["a required key missing", "an unknown key", "a kind not in the schema",
          "a status written as unset", "a count as text", "a negative count",
          "another version", "false written out", "a message without content",
          "detail omitted and messages too", "open but no open spans", "a null name",
          "a nested attribute"]


@pytest.mark.parametrize("how", BREAKS)
def test_a_broken_document_fails(how: str) -> None:
    doc = wire(docs.agent_doc())
    assert schema.problems(doc) == []
    broken = copy.deepcopy(doc)
    _break(broken, how)
    assert broken != doc
    found = schema.problems(broken)
    assert found, f"{how}: the schema let it through"
    with pytest.raises(ValueError, match="not a valid trace document"):
        schema.validate(broken)
