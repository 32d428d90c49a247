"""README.md as a spec: every block runs as written, every promise is named by a test.

Every fenced ```python block of README.md runs, in README order, in a real ipykernel (a
fresh one per test, from ``frameworks/kernel.py``) whose OpenAI client talks to the demo
server this process started, with spans forwarded to OTLP receivers on loopback. The
only things the tests change, each named where it is done:

* the client's base URL and key: README writes ``OpenAI()``; the kernel gets
  ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (which the openai client reads) for the demo
  server;
* forwarding endpoints: README's Collector, Phoenix, Jaeger, Langfuse and gRPC collector
  URLs become a receiver on loopback (:data:`README_ENDPOINTS`);
* paths: each kernel runs in a temporary directory, so ``run-1.jsonl`` lands there;
* placeholders: ``messages=[...]`` is a sketch for the reader's own messages
  (:data:`PLACEHOLDERS`), and names README leaves to the reader (``search``) or defines in
  an earlier section (``client``, ``OpenAI``) come from a prelude (:data:`PRELUDES`).

Shell blocks run too where they can (``python -m llmtrace_nb forward ...``); the
``make`` blocks are skipped (:data:`OTHER_BLOCKS` says why). What a block prints or returns
is checked against what README says about it: the line ``%load_ext`` prints, the usage
line, the trace view's representations, the DataFrames' columns and dtypes.

Below the blocks: words README (and the help texts) use that must match the code, and
:data:`GUARANTEES`, which names for every paragraph of README's "Guarantees and limits"
the tests that hold it to its word.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import pydoc
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from frameworks.kernel import Kernel

import llmtrace_nb
from llmtrace_nb.demo import DemoServer

from otlp_receiver import black_hole, receiver

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")

#: README's forwarding endpoints → the stand-in the tests use ("grpc" and "http" are
#: filled in with the loopback receivers' URLs)
README_ENDPOINTS = {
    "http://localhost:4318": "http",  # an OpenTelemetry Collector, Jaeger
    "http://localhost:6006": "http",  # Arize Phoenix (README's path /v1/traces is kept)
    "https://cloud.langfuse.com/api/public/otel": "http",  # Langfuse cloud: not reachable
    "http://collector:4317": "grpc",  # a gRPC collector: a TraceService on loopback
}
#: placeholders README leaves for the reader to fill in → what the tests fill in
PLACEHOLDERS = {
    # the opening example sketches the messages; [...] is a list holding Ellipsis,
    # which no client can send
    "messages=[...]": 'messages=[{"role": "user", "content": "What is RAG?"}]',
}
#: names a block uses that README leaves to the reader or defines in an earlier section
PRELUDES = {
    # the opening `%%trace rag-eval` block uses `client` before the 30-second example
    # makes it (README's own line, `client = OpenAI()`)
    "client": "from openai import OpenAI\nclient = OpenAI()",
    # "The demo server" uses `OpenAI`, imported by the 30-second example
    "OpenAI": "from openai import OpenAI",
    # `answer` awaits `search(question)`, the reader's own retriever
    "search": ("async def search(question):\n"
               "    return [f'doc about {question}', 'another doc']"),
}
KEY = "sk-readme-demo-key"
TRACE_MIME = "application/vnd.llmtrace.trace+json"


# -- README's blocks ---------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    lang: str
    source: str
    section: str  # the heading above it, without #s
    line: int  # of the opening fence


def readme_blocks() -> list[Block]:
    blocks: list[Block] = []
    section, fence, lang, body, start = "", None, "", [], 0
    for no, line in enumerate(TEXT.splitlines(), 1):
        if fence is None:
            if line.startswith("```"):
                fence, lang, body, start = "```", line[3:].strip(), [], no
            elif line.startswith("#"):
                section = line.lstrip("#").strip()
        elif line.startswith("```"):
            blocks.append(Block(lang, "\n".join(body) + "\n", section, start))
            fence = None
        else:
            body.append(line)
    assert fence is None, "README ends inside a code block"
    return blocks


def blocks_of(section: str, lang: str = "python") -> list[Block]:
    found = [b for b in readme_blocks() if b.section == section and b.lang == lang]
    assert found, f"README has no {lang} block under {section!r}"
    return found


def section_text(heading: str) -> str:
    """The text of a ``## heading`` section, up to the next heading of the same level."""
    match = re.search(rf"^(#+) {re.escape(heading)}\n(.*?)(?=^\1 |\Z)", TEXT, re.S | re.M)
    assert match, f"README has no section {heading!r}"
    return match.group(2)


def fill_placeholders(source: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        source = source.replace(placeholder, value)
    return source


def for_loopback(source: str, http: str, grpc: str = "") -> str:
    """README's endpoints replaced with the receivers' (see :data:`README_ENDPOINTS`)."""
    for url, which in README_ENDPOINTS.items():
        source = source.replace(url, http if which == "http" else grpc)
    return source


#: which test runs the python blocks of each README section
PYTHON_BLOCKS_RUN_BY = {
    "llmtrace_nb": "test_opening_blocks",
    "30-second example": "test_thirty_second_example",
    "Charts and the explorer": "test_charts_block",
    "Manual spans": "test_manual_spans_blocks",
    "Forwarding: spans leave the notebook only on purpose": "test_forwarding_block",
    "Files: OTLP JSON lines": "test_files_blocks",
    "A notebook is a source: executed notebooks, without re-running them":
        "test_notebook_source_blocks",
    "The demo server": "test_demo_server_block",
    "Judging calls: evaluations as OpenTelemetry": "test_judging_block",
    "Comparing runs: is it better, and what did it cost?": "test_compare_block",
}
#: the other blocks: (language, section) → the test that runs it, or why it is skipped
OTHER_BLOCKS = {
    ("", "`%%trace`"): "test_trace_usage_line",  # the usage line, not code
    ("bash", "Set-up: two commands"): (
        "skipped: `make demo` and `make test` create .venv and install into it (npm "
        "included), then run the quickstart notebook / the whole suite, this test among "
        "them; tests/test_notebooks.py runs the quickstart notebook the way `make demo` "
        "does"),
    ("bash", "Files: OTLP JSON lines"): "test_files_blocks",
    ("bash", "A notebook is a source: executed notebooks, without re-running them"):
        "test_notebook_source_blocks",
    ("text", "Spans outlive the kernel: the local store"):
        "test_the_restore_line_reads_as_readme_shows",
    ("text", "Forwarding: spans leave the notebook only on purpose"):
        "test_the_forwarding_warning_reads_as_readme_shows",
    ("text", "Set-up: two commands"): "test_the_demo_printout_reads_as_readme_shows",
}


def test_every_block_is_run_or_skipped_with_a_reason() -> None:
    names = set(globals())
    for block in readme_blocks():
        if block.lang == "python":
            runner = PYTHON_BLOCKS_RUN_BY.get(block.section)
        else:
            runner = OTHER_BLOCKS.get((block.lang, block.section))
        assert runner, (f"README line {block.line}: a {block.lang or 'plain'} block under "
                        f"{block.section!r} that no test runs")
        assert runner.startswith("skipped: ") or runner in names, runner
    # what the tests fill in is still in README
    python = "".join(b.source for b in readme_blocks() if b.lang == "python")
    assert [p for p in PLACEHOLDERS if p not in python] == []
    assert [u for u in README_ENDPOINTS if u not in python] == []
    for name, section in (("client", "llmtrace_nb"), ("OpenAI", "The demo server"),
                          ("search", "Manual spans")):
        assert re.search(rf"\b{name}\b", "".join(b.source for b in blocks_of(section)))


# -- a kernel to run them in ---------------------------------------------------------------


@dataclass
class Cell:
    """What one cell did: reply status, what it printed, what it displayed."""

    source: str
    status: str = "ok"
    stdout: str = ""
    stderr: str = ""
    error: str = ""
    #: data dicts of display_data / execute_result messages, in order
    shown: list[dict[str, Any]] = field(default_factory=list)
    #: data dicts of update_display_data messages (the live line becoming the view)
    updates: list[dict[str, Any]] = field(default_factory=list)


def execute(kernel: Kernel, source: str, timeout: float = 120,
            store_history: bool = True) -> Cell:
    cell = Cell(source)

    def hook(msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                cell.stdout += content["text"]
            else:
                cell.stderr += content["text"]
        elif kind in ("display_data", "execute_result"):
            cell.shown.append(content["data"])
        elif kind == "update_display_data":
            cell.updates.append(content["data"])
        elif kind == "error":
            cell.error += re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", "\n".join(content["traceback"]))

    reply = kernel.kc.execute_interactive(source, store_history=store_history,
                                          timeout=timeout, output_hook=hook,
                                          allow_stdin=False)
    content = reply["content"]
    cell.status = content["status"]
    if cell.status != "ok":
        cell.error = f"{content.get('ename')}: {content.get('evalue')}\n{cell.error}"
    return cell


def run_ok(kernel: Kernel, source: str, **kwargs: Any) -> Cell:
    cell = execute(kernel, source, **kwargs)
    assert cell.status == "ok", (f"the cell failed:\n{source}\n--- stdout:\n{cell.stdout}\n"
                                 f"--- stderr:\n{cell.stderr}\n--- error:\n{cell.error}")
    return cell


MARK = "@@README@@"


def kernel_value(kernel: Kernel, code: str) -> Any:
    """Run ``code``, which sets ``_out``, in the kernel; ``_out`` through JSON."""
    cell = run_ok(kernel, textwrap.dedent(code) + "\nimport json as _json\n"
                  f"print({MARK!r} + _json.dumps(_out, default=str))", store_history=False)
    line = next(ln for ln in cell.stdout.splitlines() if ln.startswith(MARK))
    return json.loads(line[len(MARK):])


@pytest.fixture
def server(demo_server: DemoServer) -> Iterator[DemoServer]:
    demo_server.clear_failures()
    demo_server.set_latency(0)
    yield demo_server
    demo_server.clear_failures()


@pytest.fixture
def kernel(server: DemoServer) -> Iterator[Kernel]:
    """A fresh kernel whose `OpenAI()` talks to the demo server (the client reads
    OPENAI_BASE_URL and OPENAI_API_KEY)."""
    with Kernel(env={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}) as k:
        yield k


def check_status_line(cell: Cell) -> None:
    """README: `%load_ext llmtrace_nb` prints one line: where spans go, which
    instrumentations are on, which tracer providers it collects from, and whether message
    content is captured."""
    lines = cell.stdout.splitlines()
    assert len(lines) == 1 and not cell.shown, cell.stdout
    line = lines[0]
    assert "spans kept in-process" in line  # where spans go
    assert re.search(r"instrumented: [^·]*openai", line)
    assert re.search(r"providers: \w", line)
    assert "content captured" in line


def check_trace_view(cell: Cell, name: str) -> dict[str, Any]:
    """README: the live line, then one display bundle with three representations under
    the cell; returns the trace document."""
    assert cell.shown, f"the traced cell showed nothing:\n{cell.source}"
    assert cell.shown[0]["text/plain"].startswith(f"⏳ {name} · "), cell.shown[0]
    views = [b for b in cell.shown + cell.updates if TRACE_MIME in b]
    assert views, f"no trace view under the cell:\n{cell.source}"
    view = views[-1]
    assert set(view) == {TRACE_MIME, "text/html", "text/plain"}, sorted(view)
    assert "<script" not in view["text/html"].lower()
    assert name in view["text/plain"]
    return view[TRACE_MIME]


# -- the opening blocks ----------------------------------------------------------------------


def test_opening_blocks(kernel: Kernel) -> None:
    load, trace = blocks_of("llmtrace_nb")
    check_status_line(run_ok(kernel, load.source))
    run_ok(kernel, PRELUDES["client"])
    cell = run_ok(kernel, fill_placeholders(trace.source))
    doc = check_trace_view(cell, "rag-eval")
    assert [s["name"] for s in doc["spans"]][:2] == ["rag-eval", "openai.chat"]
    # "Every OpenAI call ... is captured, with tokens, cost, latency" — and available as
    # DataFrames the moment the cell ends
    calls = kernel_value(kernel, """
        import llmtrace_nb
        _df = llmtrace_nb.llm_calls_df()
        _out = _df[["cell_name", "model", "input_tokens", "output_tokens", "cost_usd",
                    "duration_ms"]].to_dict("records")
        _out.append(type(answer).__name__)
    """)
    assert calls[-1] == "ChatCompletion"
    (call,) = calls[:-1]
    assert call["cell_name"] == "rag-eval" and call["model"].startswith("gpt-4o-mini")
    assert call["input_tokens"] > 0 and call["output_tokens"] > 0
    assert call["cost_usd"] > 0 and call["duration_ms"] > 0


# -- 30-second example ------------------------------------------------------------------------


def table_rows(heading_line: str) -> list[list[str]]:
    """The rows of the markdown table that follows the line starting with
    ``heading_line``."""
    start = TEXT.index(heading_line)
    lines = TEXT[start:].splitlines()[1:]
    while not lines[0].startswith("|"):
        lines.pop(0)
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def readme_spans_columns() -> dict[str, tuple[str, list[str]]]:
    """README's spans_df table: column → (dtype, the values its meaning lists)."""
    columns = {}
    for name_cell, dtype, meaning in table_rows("`llmtrace_nb.spans_df()` — one row per span"):
        for name in re.findall(r"`(\w+)`", name_cell):
            columns[name] = (dtype, re.findall(r"`(\w+)`", meaning))
    return columns


def readme_listed_columns(call: str) -> list[str]:
    """The columns a paragraph ``call — one row per …: `a`, `b`, … .`` lists."""
    start = TEXT.index(call + " — ")
    paragraph = TEXT[start:TEXT.index("\n\n", start)]
    while re.search(r"\([^()]*\)", paragraph):
        paragraph = re.sub(r"\([^()]*\)", "", paragraph)
    return re.findall(r"`(\w+)`", paragraph.split(":", 1)[1])


def test_readme_tables_parse() -> None:
    spans = readme_spans_columns()
    assert len(spans) == 30 and spans["kind"][0] == "category"
    assert readme_listed_columns("`llmtrace_nb.cells_df()`")[0] == "cell"
    assert readme_listed_columns('`llmtrace_nb.summary(by="model")`')[0] == "calls"


def test_thirty_second_example(kernel: Kernel) -> None:
    setup, compare, frames = blocks_of("30-second example")
    check_status_line(run_ok(kernel, setup.source))
    check_trace_view(run_ok(kernel, compare.source), "compare")
    shown = run_ok(kernel, frames.source).shown
    assert "compare" in shown[-1]["text/plain"]  # the last line: cells_df()
    got = kernel_value(kernel, """
        _spans = llmtrace_nb.spans_df()
        _calls = llmtrace_nb.llm_calls_df()
        _cells = llmtrace_nb.cells_df()
        _summary = llmtrace_nb.summary(by="model")
        _counted = _spans[_spans["kind"].isin(["llm", "embedding"])
                          & _spans["duplicate_of"].isna()]
        _root = _spans[_spans["kind"] == "cell"].iloc[0]
        _out = {
            "spans": {c: str(t) for c, t in _spans.dtypes.items()},
            "categories": {c: list(_spans[c].cat.categories) for c in ("kind", "status")},
            "cells": list(_cells.columns),
            "summary": list(_summary.columns),
            "summary_index": list(_summary.index.names),
            "summary_models": sorted(_summary.index),
            "calls": list(_calls["span_id"]),
            "counted": list(_counted["span_id"]),
            "cell": _cells.iloc[0][["cell_name", "llm_calls", "tags"]].to_dict(),
            "root_tag": _root["attributes"].get("llmtrace.tag.prompt"),
            "attrs": [sorted(df.attrs) for df in (_spans, _calls, _cells, _summary)],
        }
    """)
    # the spans_df table: every column, in order, with its dtype and listed values
    readme = readme_spans_columns()
    assert list(got["spans"]) == list(readme)
    assert got["spans"] == {c: dtype for c, (dtype, _) in readme.items()}
    for column in ("kind", "status"):
        assert got["categories"][column] == readme[column][1]
    # cells_df() and summary() list their columns in prose
    assert got["cells"] == readme_listed_columns("`llmtrace_nb.cells_df()`")
    assert got["summary"] == readme_listed_columns('`llmtrace_nb.summary(by="model")`')
    assert got["summary_index"] == ["model"]
    assert got["summary_models"] == ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"]
    # llm_calls_df(): the rows whose kind is llm or embedding and duplicate_of is null
    assert got["calls"] == got["counted"] and len(got["calls"]) == 2
    # --tag KEY=VALUE: llmtrace.tag.KEY on the root span and into cells_df()["tags"]
    assert got["cell"] == {"cell_name": "compare", "llm_calls": 2, "tags": {"prompt": "v2"}}
    assert got["root_tag"] == "v2"
    # each frame's attrs carries dropped_spans and unpriced_models
    assert got["attrs"] == [["dropped_spans", "unpriced_models"]] * 4


def test_thirty_second_example_with_the_comments_demo_server() -> None:
    """The setup line's comment: `OpenAI(base_url=llmtrace_nb.demo.start().base_url,
    api_key="x")`, in a kernel with no OPENAI_* variables."""
    setup, compare, _ = blocks_of("30-second example")
    alternative = re.search(r"# or (OpenAI\(.*\))$", setup.source, re.M)
    assert alternative, setup.source
    source = setup.source.replace("OpenAI()", alternative.group(1), 1)
    with Kernel() as kernel:
        run_ok(kernel, source)
        check_trace_view(run_ok(kernel, compare.source), "compare")
        assert kernel_value(kernel, "_out = len(llmtrace_nb.llm_calls_df())") == 2


def test_trace_usage_line(kernel: Kernel) -> None:
    """README: "Bad arguments print a usage line and run nothing". The line is argparse's;
    it names what README's syntax line names (argparse lists the positional NAME last)."""
    from llmtrace_nb._notebook.magics import _trace_parser

    (syntax,) = [b for b in readme_blocks() if b.section == "`%%trace`" and not b.lang]
    usage = _trace_parser.format_usage().rstrip()
    assert "\n" not in usage  # a line

    def words(text: str) -> set[str]:
        return set(re.findall(r"[^\s\[\]]+", text)) - {"usage:"}

    assert words(syntax.source) == words(usage)
    run_ok(kernel, "%load_ext llmtrace_nb")
    cell = execute(kernel, "%%trace --max-cost lots\nran = True")
    assert usage in cell.stdout + cell.stderr + cell.error
    assert kernel_value(kernel, "_out = 'ran' in dir()") is False


# -- charts --------------------------------------------------------------------------------


def test_charts_block(kernel: Kernel) -> None:
    for block in blocks_of("30-second example"):  # the data the charts show
        run_ok(kernel, block.source)
    (charts,) = blocks_of("Charts and the explorer")
    run_ok(kernel, charts.source)
    # every line of the block gives a plotly figure with something in it
    calls = [line.split("#")[0].strip() for line in charts.source.splitlines()
             if line.startswith("charts.")]
    assert len(calls) == 5
    got = kernel_value(kernel, "_out = [(type(f).__name__, len(f.data)) for f in ("
                               + ", ".join(calls) + ")]")
    assert all(name == "Figure" and n > 0 for name, n in got), got


# -- manual spans ----------------------------------------------------------------------------


def test_manual_spans_blocks(kernel: Kernel) -> None:
    decorated, plain = blocks_of("Manual spans")
    run_ok(kernel, "%load_ext llmtrace_nb")
    run_ok(kernel, PRELUDES["search"])
    run_ok(kernel, decorated.source)
    # the block defines the steps; a traced cell runs them
    run_ok(kernel, "%%trace manual --quiet\nweather = get_weather('Paris')\n"
                   "await answer('What is RAG?')")
    run_ok(kernel, plain.source)  # outside a traced cell
    run_ok(kernel, "%%trace plain otel --quiet\n" + plain.source)
    spans = kernel_value(kernel, """
        _df = llmtrace_nb.spans_df()
        _out = _df[["name", "kind", "cell_name", "input_messages", "output_messages",
                    "attributes"]].to_dict("records")
    """)
    by = {}
    for span in spans:
        by.setdefault(span["name"], []).append(span)
    (weather,) = by["get_weather"]
    assert weather["kind"] == "tool" and weather["cell_name"] == "manual"
    # "arguments and result are recorded (when content capture is on)"
    assert "Paris" in json.dumps(weather["input_messages"])
    assert "21" in json.dumps(weather["output_messages"])
    (retrieve,) = by["retrieve"]
    assert retrieve["kind"] == "retrieval" and retrieve["cell_name"] == "manual"
    # keyword arguments become span attributes; the block's own set_attribute too
    assert retrieve["attributes"]["top_k"] == 3 and retrieve["attributes"]["hits"] == 2
    # the spans carry both gen_ai.operation.name and openinference.span.kind
    for span in (weather, retrieve):
        assert {"gen_ai.operation.name", "openinference.span.kind"} <= set(span["attributes"])
    # plain OpenTelemetry: collected, with the kind it names; in a traced cell, its cell's
    reranks = by["rerank"]
    assert [s["kind"] for s in reranks] == ["retrieval", "retrieval"]
    assert reranks[-1]["cell_name"] == "plain otel"


# -- forwarding ------------------------------------------------------------------------------


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, list[Any]]]:
    """A gRPC TraceService on loopback: (its URL, the spans it received)."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import (
        trace_service_pb2,
        trace_service_pb2_grpc,
    )

    received: list[Any] = []

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    received.extend(ss.spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(0)


def wait_for_names(spans: list[Any], name: str, timeout: float = 20) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = {s.name for s in list(spans)}
        if name in names:
            return names
        time.sleep(0.05)
    return {s.name for s in list(spans)}


CALL = 'client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", ' \
       '"content": "Hi"}])'


def test_forwarding_block(kernel: Kernel, grpc_receiver: tuple[str, list[Any]]) -> None:
    (block,) = blocks_of("Forwarding: spans leave the notebook only on purpose")
    grpc_url, grpc_spans = grpc_receiver
    run_ok(kernel, "%load_ext llmtrace_nb\nimport llmtrace_nb")
    run_ok(kernel, PRELUDES["client"])
    with receiver() as rx:
        lines = block.source.splitlines()
        assert all(url in block.source for url in README_ENDPOINTS)
        # line by line: each destination gets the next traced cell's spans
        for i, line in enumerate(lines):
            out = run_ok(kernel, for_loopback(line, rx.url, grpc_url)).stdout
            if line.strip() == "%llmtrace forward off":
                assert "forwarding off" in out
                assert kernel_value(kernel, "_out = llmtrace_nb.status()").endswith(
                    "forward: off")
                continue
            assert "forwarding to" in out, out
            run_ok(kernel, f"%%trace line {i} --quiet\n{CALL}")
            spans = grpc_spans if "--protocol grpc" in line else rx.spans
            names = wait_for_names(spans, f"line {i}")
            assert {f"line {i}", "openai.chat"} <= names, (line, names)
            if "--header" in line:  # Langfuse: the Authorization header goes with them
                assert rx.requests[-1]["authorization"] == "Basic <base64 pk:sk>"
        # the block as one cell
        run_ok(kernel, for_loopback(block.source, rx.url, grpc_url))
        assert kernel_value(kernel, "_out = llmtrace_nb.status()").endswith("forward: off")


# -- files -----------------------------------------------------------------------------------


def test_files_blocks(kernel: Kernel, tmp_path: Path) -> None:
    (block,) = blocks_of("Files: OTLP JSON lines")
    (shell,) = blocks_of("Files: OTLP JSON lines", "bash")
    run_ok(kernel, "%load_ext llmtrace_nb\nimport llmtrace_nb")
    run_ok(kernel, PRELUDES["client"])
    run_ok(kernel, f"%%trace saved --tag run=1 --quiet\n{CALL}")
    out = run_ok(kernel, block.source).stdout
    path = kernel.cwd / "run-1.jsonl"
    assert path.is_file()
    assert "wrote 2 spans to run-1.jsonl" in out
    # the same spans, loaded into the session they came from: nothing is added twice
    assert "read 0 spans from run-1.jsonl (2 spans already loaded)" in out
    ids = sorted(kernel_value(kernel, "_out = list(llmtrace_nb.spans_df()['span_id'])"))
    assert len(ids) == 2
    # the comments' Python equivalents
    save_call, load_call = re.findall(r"# or (llmtrace_nb\.\w+\(\"run-1\.jsonl\"\))",
                                      block.source)
    path.unlink()
    run_ok(kernel, save_call)
    assert path.is_file()
    # "Loading works in a fresh kernel (it enables llmtrace_nb if needed) and feeds the
    # same DataFrames and views, cells and tags included", e.g. after a restart
    with Kernel() as fresh:
        shutil.copy(path, fresh.cwd / path.name)
        run_ok(fresh, "import llmtrace_nb\n" + load_call)
        got = kernel_value(fresh, """
            _cells = llmtrace_nb.cells_df()
            _out = [sorted(llmtrace_nb.spans_df()['span_id']),
                    _cells[["cell_name", "llm_calls", "tags"]].to_dict("records"),
                    llmtrace_nb.view("saved").document["name"]]
        """)
        assert got == [ids, [{"cell_name": "saved", "llm_calls": 1, "tags": {"run": "1"}}],
                       "saved"]
    # the shell line: replay the file to a backend
    with receiver() as rx:
        argv = shlex.split(for_loopback(shell.source.strip(), rx.url))
        assert argv[0] == "python"
        proc = subprocess.run([sys.executable, *argv[1:]], cwd=kernel.cwd, text=True,
                              capture_output=True, timeout=60,
                              env={k: v for k, v in os.environ.items()
                                   if not k.startswith("OTEL_")})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"sent 2 spans to {rx.url}/v1/traces"
        assert sorted(s.span_id.hex() for s in rx.wait_for(2)) == ids


def test_notebook_source_blocks(kernel: Kernel) -> None:
    section = "A notebook is a source: executed notebooks, without re-running them"
    (block,) = blocks_of(section)
    (shell,) = blocks_of(section, "bash")
    # an executed notebook: two traced cells, their outputs as a kernel displayed them
    run_ok(kernel, "%load_ext llmtrace_nb\nimport llmtrace_nb")
    run_ok(kernel, PRELUDES["client"])
    saved = []
    for name in ("first", "second"):
        cell = run_ok(kernel, f"%%trace {name}\n{CALL}\n{CALL}")
        # what the notebook keeps: the live line's output, updated into the view
        saved.append(cell.updates[-1] if cell.updates else cell.shown[-1])
        assert "application/vnd.llmtrace.trace+json" in saved[-1]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CALL, outputs=[
        nbformat.v4.new_output("display_data", data=data)]) for data in saved]
    (kernel.cwd / "executed").mkdir()
    nbformat.write(nb, kernel.cwd / "executed" / "analysis.ipynb")
    with Kernel() as fresh:  # a session that never ran them
        shutil.copytree(kernel.cwd / "executed", fresh.cwd / "executed")
        run_ok(fresh, "import llmtrace_nb")
        shown = run_ok(fresh, block.source).shown
        table = kernel_value(fresh, """
            _s = llmtrace_nb.summary(by=["cell_name", "model"])
            _out = [list(_s.index.get_level_values(0)), list(_s["calls"])]
        """)
        assert table == [["first", "second"], [2, 2]]
        assert shown and "cost_usd" in shown[-1]["text/plain"]
    # the shell line, and the output's shape README shows
    command, *sample = shell.source.splitlines()
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[:4] == ["python", "-m", "llmtrace_nb", "summary"]
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=kernel.cwd, text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = proc.stdout.splitlines()
    assert re.fullmatch(r"4 LLM calls in 2 traced cells, \$0\.\d+", got[0])
    assert re.fullmatch(r"\d+ LLM calls in \d+ traced cells, \$0\.\d+", sample[0])
    assert got[1].split() == sample[1].split() == [
        "calls", "errors", "in", "tok", "out", "tok", "cost", "p50", "ms", "p95", "ms", "TTFT",
        "ms", "tok/s"]
    assert got[2].strip() == sample[2].strip() == "model"
    assert got[3].split()[1:3] == ["4", "0"] and sample[3].split()[0] == got[3].split()[0]


def test_judging_block(kernel: Kernel) -> None:
    (block,) = blocks_of("Judging calls: evaluations as OpenTelemetry")
    run_ok(kernel, "%load_ext llmtrace_nb\nimport llmtrace_nb")
    run_ok(kernel, PRELUDES["client"])
    run_ok(kernel, f"%%trace judged\n{CALL}\n{CALL}")
    shown = run_ok(kernel, block.source).shown
    assert shown and "mentions_paris_score" in shown[-1]["text/plain"]
    got = kernel_value(kernel, """
        _e = llmtrace_nb.evaluations_df()
        _out = [list(_e["evaluation"]), [bool(v) for v in _e["negative"]],
                list(llmtrace_nb.summary().columns)]
    """)
    assert got[0] == ["exact_match", "feedback", "mentions_paris", "mentions_paris"]
    assert got[1][:2] == [False, True]
    assert {"exact_match_score", "exact_match_pass_rate", "feedback_pass_rate",
            "mentions_paris_score", "mentions_paris_pass_rate"} <= set(got[2])


def test_compare_block(kernel: Kernel) -> None:
    (block,) = blocks_of("Comparing runs: is it better, and what did it cost?")
    run_ok(kernel, "%load_ext llmtrace_nb\nimport llmtrace_nb")
    run_ok(kernel, PRELUDES["client"])
    for version in ("v1", "v2"):
        run_ok(kernel, f"%%trace prompt {version} --tag prompt={version}\n{CALL}\n{CALL}")
    shown = run_ok(kernel, block.source).shown
    assert shown and "ratio prompt=v2" in shown[-1]["text/plain"]
    got = kernel_value(kernel, """
        _c = llmtrace_nb.compare("prompt v1", "prompt v2")
        _n = llmtrace_nb.compare("prompt v1", "prompt v2", pair="name")
        _out = [_c.data["labels"], [t["calls"] for t in _c.data["totals"]],
                sorted(_c._repr_mimebundle_()),
                [(p.get("name"), p.get("nth")) for p in _n.data["pairs"]]]
    """)
    assert got == [["prompt v1", "prompt v2"], [2, 2],
                   ["application/vnd.llmtrace.compare+json", "text/html", "text/plain"],
                   [["openai.chat", 1], ["openai.chat", 2]]]


def test_the_restore_line_reads_as_readme_shows(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from llmtrace_nb._capture.collector import SpanCollector
    from llmtrace_nb._keep.keeper import Identity, Keeper
    from llmtrace_nb._notebook.status import earlier_line

    (block,) = blocks_of("Spans outlive the kernel: the local store", "text")
    collector = SpanCollector(100)
    before = Keeper(tmp_path / "s.sqlite", collector, lambda: True,
                    Identity(time.time_ns(), "k1", "/nb.ipynb"))
    before.store.append(before.session, [(12, None, None, b"x")])
    before.close()
    now = Keeper(tmp_path / "s.sqlite", collector, lambda: True,
                 Identity(time.time_ns(), "k2", "/nb.ipynb"))
    try:
        line = earlier_line(SimpleNamespace(keeper=now))  # type: ignore[arg-type]
    finally:
        now.close()
    pattern = re.escape(block.source.strip())
    pattern = pattern.replace(re.escape("2026-12-03 10:41"), r"\d{4}-\d\d-\d\d \d\d:\d\d")
    assert line is not None and re.fullmatch(pattern, line), line


# -- the demo server -------------------------------------------------------------------------


def test_demo_server_block(kernel: Kernel) -> None:
    (block,) = blocks_of("The demo server")
    run_ok(kernel, PRELUDES["OpenAI"])
    run_ok(kernel, block.source)
    got = kernel_value(kernel, """
        import time
        _start = time.perf_counter()
        _reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        _out = {"base_url": server.base_url, "anthropic": server.anthropic_base_url,
                "reply": _reply.choices[0].message.content, "requests": server.requests,
                "answered": server.answered, "seconds": time.perf_counter() - _start}
        server.stop()
    """)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", got["base_url"])
    assert got["anthropic"] == got["base_url"].removesuffix("/v1")
    # the next request got a 429, which the client retried
    assert got["reply"] == "Demo reply to: Hi" and got["requests"] == 2
    assert [a["model"] for a in got["answered"]] == ["gpt-4o-mini-2024-07-18"]
    assert got["seconds"] >= 2 * 0.05  # latency=0.05 on both requests


def test_demo_cli_is_as_readme_writes_it() -> None:
    """`python -m llmtrace_nb.demo [--port N] ...` names every option, prints its base URL."""
    written = re.search(r"`python -m llmtrace_nb\.demo ([^`]*)`", TEXT)
    assert written
    proc = subprocess.run([sys.executable, "-m", "llmtrace_nb.demo", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    options = set(re.findall(r"--[\w-]+", proc.stdout)) - {"--help"}
    assert options == set(re.findall(r"--[\w-]+", written.group(1)))
    serving = subprocess.Popen([sys.executable, "-m", "llmtrace_nb.demo", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert serving.stdout is not None
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1\n", serving.stdout.readline())
    finally:
        serving.terminate()
        serving.wait(10)


# -- words that must match the code (issue item 9) ---------------------------------------------


def test_forward_cli_options_are_in_readme() -> None:
    proc = subprocess.run([sys.executable, "-m", "llmtrace_nb", "forward", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    options = set(re.findall(r"--[\w-]+", proc.stdout)) - {"--help"}
    assert options == {"--endpoint", "--protocol", "--header", "--redact"}
    files = section_text("Files: OTLP JSON lines")
    assert {o for o in options if o not in files} == set()


def test_enable_help_says_what_forward_does() -> None:
    """help(llmtrace_nb.enable) said forwarding was "not available yet"."""
    text = pydoc.render_doc(llmtrace_nb.enable, renderer=pydoc.plaintext)
    assert "not available" not in text and "not yet" not in text
    assert "forward" in text and "OTLP" in text


def test_benchmarks_help_agrees_with_readme() -> None:
    """README: each case group in a fresh interpreter, five minutes of Phoenix."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    minutes = re.search(r"about (\w+) minutes, (\w+) of them for the side by side with "
                        r"Arize Phoenix", " ".join(TEXT.split()))
    assert minutes, "README no longer says how long the Phoenix side by side takes"
    assert f"Phoenix (about {minutes.group(2)} minutes" in text
    assert "one process" not in text and "fresh interpreter" in text


def test_demo_error_and_slow_models_are_in_readme() -> None:
    from llmtrace_nb import demo

    names = [*demo._MAGIC_ERRORS, demo.SLOW_MODEL]
    assert names and all(f"`{name}`" in section_text("The demo server") for name in names)


def test_forwarding_environment_variables_are_in_readme() -> None:
    from llmtrace_nb._ship.forward import config_from_env

    class Recording(dict):
        def get(self, key: str, default: Any = None) -> Any:
            read.append(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> Any:
            read.append(key)
            return super().__getitem__(key)

    read: list[str] = []
    config_from_env(Recording(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1"))
    config_from_env(Recording(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:1"))
    assert "OTEL_EXPORTER_OTLP_TRACES_HEADERS" in read
    forwarding = section_text("Forwarding: spans leave the notebook only on purpose")
    assert sorted({v for v in read if f"`{v}`" not in forwarding}) == []


def test_explore_parameters_are_in_readme() -> None:
    paragraph = TEXT[TEXT.index("`llmtrace_nb.explore("):]
    paragraph = paragraph[:paragraph.index("\n\n")]
    for name in inspect.signature(llmtrace_nb.explore).parameters:
        assert f"`{name}`" in paragraph or f"{name}=" in paragraph or f"({name})" in (
            paragraph), name


def test_live_line_example_is_what_the_line_prints() -> None:
    from llmtrace_nb.views.live import live_text

    example = re.search(r"\(`(⏳ name · .*?)`\)", " ".join(section_text("`%%trace`").split()))
    assert example, "README no longer shows the live line"
    calls, tokens, cost, seconds = re.fullmatch(
        r"⏳ name · (\d+) LLM calls · ([\d,]+) tokens · \$([\d.]+) · ([\d.]+) s",
        example.group(1)).groups()
    line = live_text("name", {"llm_calls": int(calls), "tokens": int(tokens.replace(",", "")),
                              "cost_usd": float(cost)}, float(seconds))
    assert line == example.group(1)


# -- Guarantees and limits ---------------------------------------------------------------------

#: every paragraph of README's "Guarantees and limits" → the tests that hold it
GUARANTEES: dict[str, list[str]] = {
    "What is kept": [
        # every span that ends, any thread or task, up to the bound
        "tests/test_collector.py::test_keeps_finished_spans_with_their_cell",
        "tests/test_collector.py::test_threads_each_span_collected_exactly_once",
        "tests/test_collector.py::test_bound_holds_after_every_span",
        "tests/test_hardening.py::test_eight_threads_by_a_thousand_spans",
        "tests/test_hardening.py::test_a_thousand_concurrent_async_calls",
        "tests/test_magics.py::test_threads_belong_to_the_cell",
        "tests/test_magics.py::test_top_level_await_and_asyncio_tasks_belong_to_the_cell",
        # spans belong to the cell they started in, even ending after it ("still running")
        "tests/test_collector.py::test_span_started_in_cell_but_ended_after_keeps_the_cell",
        "tests/test_hardening.py::test_spans_ending_after_their_cell_are_kept_and_the_view_says_so",
    ],
    "What is dropped, and when": [
        "tests/test_collector.py::test_bounded_buffer_evicts_oldest_and_counts_drops",
        "tests/test_hardening.py::test_full_buffer_is_reported",
        "tests/test_hardening.py::test_memory_stays_flat_over_a_million_spans",
        # a cell keeps exact totals when its spans are evicted
        "tests/test_attacks.py::test_eviction_does_not_undercount_a_cell",
        "tests/test_same_call.py::test_eviction_of_one_member_breaks_nothing",
        "tests/test_collector.py::test_resize_and_clear",  # %llmtrace clear
        # at most 10,000 spans in a view, ~3 MB, "details omitted"
        "tests/test_html_view.py::test_size_stays_bounded_for_10k_spans",
        "tests/e2e/test_lab.py::test_big_trace_stays_responsive",
        # texts cut at 2,000 characters with the marker; the DataFrames keep them whole
        "tests/test_readme.py::test_a_view_cuts_long_texts_and_the_frames_keep_them",
        "tests/test_hardening.py::test_huge_and_deep_values",
    ],
    "What is read and what is not": [
        "tests/test_dialects.py::test_mixed_dialects_make_one_coherent_frame",
        "tests/test_normalize.py::test_normalize_equals_semconv_span_by_span",
        "tests/test_hardening.py::test_any_attributes_give_a_usable_row_document_and_view",
        "tests/test_hardening.py::test_huge_and_deep_values",  # "-3"-like counts, not JSON
        "tests/test_attacks.py::test_a_time_past_2262_is_unknown_and_breaks_nothing",
        "tests/test_attacks.py::test_tiny_and_huge_durations_render",
    ],
    "What is scrubbed": [
        "tests/test_hardening.py::test_keys_pasted_into_prompts_are_scrubbed_everywhere",
        "tests/test_openai.py::test_authorization_header_never_reaches_a_frame",
        "tests/test_attacks.py::test_basic_auth_in_a_url_is_scrubbed",
        "tests/test_attacks.py::test_secrets_in_names_reach_nothing",
        "tests/test_attacks.py::test_secrets_in_status_resource_and_links_are_scrubbed",
        "tests/test_files.py::test_saved_files_hold_no_secrets_and_no_content_when_capture_is_off",
        "tests/test_forward.py::test_traced_cell_arrives_scrubbed",
        # every rule linear in the text
        "tests/test_attacks.py::test_each_scrubber_rule_is_linear_on_a_megabyte",
        "tests/test_attacks.py::test_the_whole_scrubber_on_a_megabyte_tool_result",
    ],
    "What counts as content": [
        "tests/test_attacks.py::test_redaction_is_an_allow_list",
        "tests/test_attacks.py::test_a_file_saved_with_content_off_holds_no_text",
        "tests/test_attacks.py::test_frames_with_content_off_hold_no_text",
        "tests/test_forward.py::test_redaction",
        "tests/test_content_off.py::test_content_off_leaves_no_text_in_any_exit",
    ],
    "What leaves the machine": [
        "tests/test_readme.py::test_nothing_leaves_the_machine_unless_forwarded",
        # OTEL_EXPORTER_OTLP_* set when the extension loads
        "tests/test_forward.py::test_standard_environment_variables",
        # scrubbed, redacted and filtered by your policy
        "tests/test_forward.py::test_traced_cell_arrives_scrubbed",
        "tests/test_forward.py::test_redaction",
        "tests/test_forward.py::test_only_keeps_whole_traces_by_rule",
    ],
    "Forwarding is bounded": [
        "tests/test_forward_faults.py::test_a_held_request_fails_at_its_deadline",
        "tests/test_forward_faults.py::test_the_default_deadline_against_a_drip",
        "tests/test_forward_faults.py::test_grpc_has_a_deadline",
        "tests/test_forward_faults.py::test_a_redirect_is_not_sent",
        "tests/test_forward_faults.py::test_an_error_status_is_named",
        "tests/test_forward_faults.py::test_a_2xx_is_sent",
        "tests/test_forward.py::test_bad_endpoints_never_hurt_the_cell",
    ],
    "What a file may be": [
        "tests/test_files_hostile.py::test_a_fifo_is_refused_at_once",
        "tests/test_files_hostile.py::test_a_device_is_refused_without_reading_it",
        "tests/test_files_hostile.py::test_a_directory_is_refused",
        "tests/test_files_hostile.py::test_a_line_over_the_bound_is_an_error_naming_it",
        "tests/test_files_hostile.py::test_an_endless_line_is_not_held_in_memory",
        "tests/test_files_hostile.py::test_binary_and_non_utf8_files_name_the_line",
        "tests/test_files_hostile.py::test_deeply_nested_json_names_the_line",
        "tests/test_files_hostile.py::test_bad_values_name_the_line_and_the_field",
        "tests/test_files_hostile.py::test_a_cell_name_that_is_not_text_is_named_and_falls_back",
        "tests/test_files_hostile.py::test_a_cell_number_that_is_not_a_count_is_named",
        "tests/test_files_hostile.py::test_tags_of_other_types_are_text_or_named",
        "tests/test_files_hostile.py::test_saved_lines_stay_under_the_bound",
        "tests/test_files_hostile.py::test_a_failed_save_leaves_the_old_file_and_no_temp",
        "tests/test_files_hostile.py::test_save_keeps_the_mode_of_the_file_it_replaces",
        "tests/test_files_hostile.py::test_save_creates_new_files_private",
        "tests/test_files_hostile.py::test_the_temp_file_is_never_more_readable_than_the_result",
        "tests/test_files_hostile.py::test_save_writes_through_a_symlink_keeping_it",
        "tests/test_files_hostile.py::test_save_refuses_a_planted_symlink_in_a_shared_directory",
        "tests/test_files.py::test_bad_files_name_the_line",
    ],
    "Forked processes": [
        "tests/test_readme.py::test_a_forked_child_collects_into_its_own_copy",
        "tests/test_attacks.py::test_a_child_forked_while_a_lock_is_held_does_not_hang",
    ],
    "What never happens": [
        "tests/test_forward.py::test_bad_endpoints_never_hurt_the_cell",
        "tests/test_readme.py::test_exit_waits_at_most_3_s_for_the_last_spans",
        "tests/test_forward.py::test_exit_is_not_held_by_a_black_hole",
        "tests/test_forward_faults.py::test_exit_is_not_held_by_a_drip",
        "tests/test_html_view.py::test_hostile_strings_stay_text",
        "tests/test_widgets.py::test_explore_escapes_everything",
        "tests/e2e/test_lab.py::test_untrusted_markup_stays_text",
    ],
}


def guarantee_titles() -> list[str]:
    section = section_text("Guarantees and limits")
    return [t.rstrip(".") for t in re.findall(r"^\*\*(.+?)\*\*", section, re.M)]


def collected_test_ids() -> set[str]:
    """Every test function under tests/, as ``tests/path.py::name`` (read with ast)."""
    ids = set()
    for path in TESTS.rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        prefix = path.relative_to(ROOT).as_posix()
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name.startswith("test_"):
                    ids.add(f"{prefix}::{node.name}")
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                ids.update(f"{prefix}::{node.name}::{m.name}" for m in node.body
                           if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef)
                           and m.name.startswith("test_"))
    return ids



def test_every_guarantee_is_tested() -> None:
    titles = guarantee_titles()
    assert len(titles) >= 10, titles
    assert sorted(set(titles) - set(GUARANTEES)) == [], "guarantees no test names"
    assert sorted(set(GUARANTEES) - set(titles)) == [], "titles README no longer has"
    known = collected_test_ids()
    missing = {t: [i for i in ids if i not in known] for t, ids in GUARANTEES.items()}
    assert {t: ids for t, ids in missing.items() if ids} == {}
    assert all(GUARANTEES[t] for t in titles)


def test_a_view_cuts_long_texts_and_the_frames_keep_them() -> None:
    """What is dropped: "Long texts in a view are cut at 2,000 characters with a visible
    "… [truncated N more characters]" marker ... The DataFrames keep full texts."""
    from llmtrace_nb._shape import document

    from spans import Recorder, openai_chat

    long = "x" * 5_000
    rec = Recorder()
    rec.span("chat", openai_chat() | {"gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": long}]}])})
    frame = rec.frames.spans()
    assert frame.iloc[0]["input_messages"][0]["content"] == long
    doc = document.build(frame, name="long", cell=1)
    (span,) = doc["spans"]
    shown = span["input_messages"][0]["content"]
    assert shown == "x" * 2_000 + "… [truncated 3,000 more characters]"
    assert span["truncated"] is True


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "OPENAI_", "TRACELOOP_"))}


CONNECTIONS = """
import json, sys, time
connects = []

def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        connects.append(list(args[1][:2]))

sys.addaudithook(hook)
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
ip = InteractiveShell.instance()

def cell(source):
    with capture_output():
        result = ip.run_cell(source, store_history=True)
    result.raise_error()

CALL = ("client.chat.completions.create(model='gpt-4o-mini', "
        "messages=[{'role': 'user', 'content': 'hi'}])")
with capture_output():
    ip.run_line_magic("load_ext", "llmtrace_nb")
cell("from openai import OpenAI\\nclient = OpenAI()")
cell("%%trace local\\n" + CALL)
import llmtrace_nb
from llmtrace_nb.views import charts
llmtrace_nb.spans_df(); llmtrace_nb.cells_df(); llmtrace_nb.summary()
llmtrace_nb.view().html(); charts.cost_by(); llmtrace_nb.status()
llmtrace_nb.save("spans.jsonl"); llmtrace_nb.load("spans.jsonl")
local = list(connects)
cell("%llmtrace forward " + sys.argv[1])
cell("%%trace forwarded\\n" + CALL)
from llmtrace_nb._notebook import session
deadline = time.monotonic() + 20
while session.require().forwarder.counts()["sent"] < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"local": local, "all": connects}))
"""


def test_nothing_leaves_the_machine_unless_forwarded(server: DemoServer,
                                                     tmp_path: Path) -> None:
    """What leaves the machine: "Nothing, unless you forward ...: then the scrubbed spans
    ... go to that one endpoint." Every connection a session makes, through a traced
    cell, the frames, a view, a chart, save and load: only to the API it calls; with
    forwarding on, to that one endpoint too."""
    env = clean_env() | {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": KEY}
    with receiver() as rx:
        proc = subprocess.run([sys.executable, "-c", CONNECTIONS, rx.url], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        # the spans of the cell traced while forwarding, once each
        assert sorted(s.name for s in rx.spans) == ["forwarded", "openai.chat"]
    demo, otlp = ["127.0.0.1", server.port], ["127.0.0.1", rx.server_address[1]]
    assert got["local"] and all(c == demo for c in got["local"]), got["local"]
    assert otlp in got["all"] and all(c in (demo, otlp) for c in got["all"]), got["all"]


FORK = """
import json, os, sys
import llmtrace_nb
llmtrace_nb.enable()
with llmtrace_nb.span("before the fork", kind="tool"):
    pass
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    code = 1
    try:
        with llmtrace_nb.span("in the child", kind="tool"):
            pass
        names = sorted(llmtrace_nb.spans_df()["name"])
        llmtrace_nb.save("child.jsonl")
        os.write(write, json.dumps(names).encode())
        code = 0
    finally:
        os._exit(code)
os.close(write)
child = json.loads(os.read(read, 1 << 16))
_, status = os.waitpid(pid, 0)
parent = sorted(llmtrace_nb.spans_df()["name"])
llmtrace_nb.load("child.jsonl")
print(json.dumps({"status": status, "child": child, "parent": parent,
                  "loaded": sorted(llmtrace_nb.spans_df()["name"])}))
"""


def test_a_forked_child_collects_into_its_own_copy(tmp_path: Path) -> None:
    """Forked processes: the child starts with a copy of the spans so far and collects its
    own into it; the parent never sees them; a file saved in the child keeps them."""
    proc = subprocess.run([sys.executable, "-c", FORK], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["status"] == 0
    assert got["child"] == ["before the fork", "in the child"]
    assert got["parent"] == ["before the fork"]
    assert got["loaded"] == ["before the fork", "in the child"]


EXIT = """
import sys, time
import llmtrace_nb
llmtrace_nb.enable(forward=sys.argv[1] if len(sys.argv) > 1 else False)
for i in range(200):
    with llmtrace_nb.span(f"step {i}", kind="tool"):
        pass
print(time.time(), flush=True)
"""


def exit_seconds(*argv: str) -> float:
    """From the script's last statement to the end of the process."""
    proc = subprocess.run([sys.executable, "-c", EXIT, *argv], env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    ended = time.time()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ended - float(proc.stdout.split()[-1])


def test_exit_waits_at_most_3_s_for_the_last_spans() -> None:
    """What never happens: "kernel exit waits at most 3 s for the last spans" — against an
    endpoint that takes the connection and never answers, measured against the same run
    with forwarding off."""
    before = exit_seconds()
    with black_hole() as url:
        on = exit_seconds(url)
    off = (before + exit_seconds()) / 2  # the runs around it, for a machine that drifts
    assert on - off <= 3.5, f"exit took {on:.2f} s forwarding to a black hole, {off:.2f} s off"



def test_the_forwarding_warning_reads_as_readme_shows() -> None:
    """"It never hurts the notebook": the warning README quotes is the one the forwarder
    writes for one failed span of a named cell (the live runs in test_forward_faults.py
    check that such failures are told, once, under the right cell)."""
    from llmtrace_nb._capture.collector import CellRef
    from llmtrace_nb._ship.forward import _Untold, failure_warning

    quoted = [b.source.strip() for b in blocks_of("Forwarding: spans leave the notebook only "
                                                   "on purpose", "text")
              if "could not be forwarded" in b.source]
    assert len(quoted) == 1, quoted
    cell = CellRef(number=12, name="rag-eval")
    untold = _Untold(reasons=["HTTP 500 Internal Server Error"], cells={cell.seq: (cell, 1)})
    assert failure_warning({"http://localhost:4318/v1/traces": untold}) == quoted[0]


def test_the_demo_printout_reads_as_readme_shows(tmp_path: Path) -> None:
    """What `make demo` prints after running the quickstart: README's lines, with this
    run's numbers (the demo server's latencies vary)."""
    done = subprocess.run([sys.executable, "scripts/run_notebook.py",
                           "notebooks/quickstart.ipynb", "--out", str(tmp_path), "--summary"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout.splitlines()
    shown = blocks_of("Set-up: two commands", "text")[0].source.splitlines()
    assert printed[0] == shown[0]  # the demo server's prices: the same calls, the same cost
    assert printed[1].split() == shown[1].split()  # the column heads
    models = [line.split()[0] for line in printed[3:] if line.startswith("gpt-")]
    assert models == [line.split()[0] for line in shown[3:] if line.startswith("gpt-")]
    assert max(len(line) for line in printed) <= 100
    assert printed[-2:] == [f"executed notebook: {tmp_path / 'quickstart.ipynb'}",
                            f"as HTML:           {tmp_path / 'quickstart.html'}"]
    assert shown[-2:] == ["executed notebook: build/quickstart.ipynb",
                          "as HTML:           build/quickstart.html"]

