"""An executed notebook as a source: its saved trace documents back into the frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import openai
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb.__main__ import dollars
from llmtrace_nb._notebook.api import NotebookNote
from llmtrace_nb._shape.document import MIME_TYPE
from llmtrace_nb._ship.files import TraceFileError
from llmtrace_nb.demo import DemoServer

from conftest import ROOT, run

CELL = """\
%%trace round trip
from concurrent.futures import ThreadPoolExecutor

def ask(q, model="gpt-4o-mini"):
    return client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": q}]).choices[0].message.content

ask("Plain question with a [cached] prefix, please")
list(client.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": "Stream a few words to me"}],
    stream=True, stream_options={"include_usage": True}))
with llmtrace_nb.span("lookup", kind="tool", query="paris"):
    pass
with ThreadPoolExecutor(2) as pool:
    list(pool.map(ask, ["one", "two words"]))
"""

#: the columns a document keeps, compared between the live session and the notebook
KEPT = ["trace_id", "span_id", "parent_span_id", "name", "kind", "status", "cell",
        "cell_name", "provider", "request_model", "response_model", "model",
        "input_tokens", "output_tokens", "total_tokens", "finish_reasons",
        "input_messages", "output_messages"]
#: counts a document leaves out when they are 0: they read back unknown, same sums
ZERO_LEFT_OUT = ["cache_read_tokens", "cache_write_tokens", "reasoning_tokens"]


def _executed(shell: InteractiveShell, server: DemoServer, path: Path) -> tuple[
        pd.DataFrame, dict[str, object]]:
    """Run the traced cell, save a notebook holding its output; the spans it made."""
    shell.user_ns["client"] = openai.OpenAI(base_url=server.base_url, api_key="sk-demo",
                                            max_retries=0)
    shell.user_ns["llmtrace_nb"] = llmtrace_nb
    server.set_latency(0.0)
    result, out = run(shell, CELL)
    assert result.success, out.stderr
    bundle = next(b for b in out.bundles if MIME_TYPE in b)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(CELL, execution_count=result.execution_count)
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    nb.cells = [nbformat.v4.new_markdown_cell("# a run"), cell]
    nbformat.write(nb, path)
    return llmtrace_nb.spans_df(), bundle[MIME_TYPE]


def test_a_notebooks_traces_load_back_into_the_frames(shell: InteractiveShell,
                                                      demo_server: DemoServer,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "run.ipynb"
    live, doc = _executed(shell, demo_server, path)
    live_cells = llmtrace_nb.cells_df()
    run(shell, "%llmtrace clear")
    assert llmtrace_nb.spans_df().empty

    assert llmtrace_nb.load(path) == len(live)
    loaded = llmtrace_nb.spans_df()
    key = ["span_id"]
    a = live.sort_values(key).reset_index(drop=True)
    b = loaded.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[KEPT], b[KEPT], check_dtype=False)
    pd.testing.assert_frame_equal(a[ZERO_LEFT_OUT].fillna(0), b[ZERO_LEFT_OUT].fillna(0),
                                  check_dtype=False)
    calls_a, calls_b = (f[f["kind"] == "llm"] for f in (a, b))
    assert calls_b["is_streaming"].tolist() == calls_a["is_streaming"].tolist()
    # times to the microsecond the document keeps; cost and TTFT as computed
    assert (a["start_time"] - b["start_time"]).abs().max() <= pd.Timedelta(microseconds=1)
    assert (a["duration_ms"] - b["duration_ms"]).abs().max() <= 0.002
    assert b["cost_usd"].to_numpy() == pytest.approx(a["cost_usd"].to_numpy(), rel=1e-9,
                                                     nan_ok=True)
    assert b["ttft_ms"].to_numpy() == pytest.approx(a["ttft_ms"].to_numpy(), abs=0.002,
                                                    nan_ok=True)
    assert b.query("kind == 'tool'")["attributes"].iloc[0]["query"] == "paris"
    calls = llmtrace_nb.llm_calls_df()
    assert len(calls) == 4 and calls["is_streaming"].sum() == 1
    cells = llmtrace_nb.cells_df()
    assert len(cells) == 1
    for column in ("cell", "cell_name", "llm_calls", "input_tokens", "output_tokens"):
        assert cells[column].iloc[0] == live_cells[column].iloc[0]
    assert cells["cost_usd"].iloc[0] == pytest.approx(doc["totals"]["cost_usd"], rel=1e-9)
    # the cell's view again, from the loaded spans: the same totals as the saved one
    view = llmtrace_nb.view(int(cells["cell"].iloc[0])).document
    for total in ("spans", "llm_calls", "input_tokens", "output_tokens", "errors"):
        assert view["totals"][total] == doc["totals"][total]

    assert llmtrace_nb.load(path) == 0  # loading again adds nothing


def test_summary_from_a_shell(shell: InteractiveShell, demo_server: DemoServer,
                              tmp_path: Path) -> None:
    path = tmp_path / "run.ipynb"
    _, doc = _executed(shell, demo_server, path)
    done = subprocess.run([sys.executable, "-m", "llmtrace_nb", "summary", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("4 LLM calls in 1 traced cell, $")
    assert lines[0].endswith(dollars(doc["totals"]["cost_usd"]))  # type: ignore[arg-type]
    assert any(line.startswith("gpt-4o-mini") and " 3 " in line for line in lines)
    assert any(line.startswith("gpt-4o-2") for line in lines)
    by_cell = subprocess.run([sys.executable, "-m", "llmtrace_nb", "summary", str(path),
                              "--by", "cell_name,model"], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
    assert by_cell.returncode == 0 and "round trip" in by_cell.stdout
    empty = tmp_path / "empty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), empty)
    none = subprocess.run([sys.executable, "-m", "llmtrace_nb", "summary", str(empty)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert none.returncode == 1 and "no traces" in none.stderr


def test_dollars_keep_four_significant_digits() -> None:
    assert [dollars(v) for v in (0.0, 2.06e-05, 0.000125, 1.2344, 12.3, 1234.5)] == [
        "$0.00", "$0.00002060", "$0.0001250", "$1.234", "$12.30", "$1,234.50"]


def _notebook_with(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "crafted.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                "cells": [{"cell_type": "code", "source": "", "metadata": {},
                                           "outputs": [{"output_type": "display_data",
                                                        "metadata": {},
                                                        "data": {MIME_TYPE: doc}}]}]}))
    return path


def _doc(**span: object) -> dict[str, object]:
    return {"version": 1, "cell": 3, "name": "crafted", "trace_id": "ab" * 16,
            "start_time": "2026-12-03T10:00:00+00:00", "spans": [
                {"span_id": "cd" * 8, "name": "openai.chat", "kind": "llm", "start_ms": 1.5,
                 "duration_ms": 2.25, "model": "gpt-4o-mini", "input_tokens": 10,
                 "output_tokens": 5, **span}]}


def test_bad_documents_name_the_cell_and_span_and_load_nothing(shell: InteractiveShell,
                                                               tmp_path: Path) -> None:
    for bad, message in ((_doc(span_id="xyz"), "span_id is not 16 hex digits"),
                         (_doc(parent_span_id="00" * 8), "parent_span_id is all zeros"),
                         (_doc(duration_ms=-5), "times out of range"),
                         ({**_doc(), "start_time": "yesterday"}, "start_time is not a time")):
        with pytest.raises(TraceFileError, match=message) as caught:
            llmtrace_nb.load(_notebook_with(tmp_path, bad))
        assert "cell 1" in str(caught.value)
    assert llmtrace_nb.spans_df().empty
    (tmp_path / "text.ipynb").write_text("not json")
    with pytest.raises(TraceFileError, match="not a notebook"):
        llmtrace_nb.load(tmp_path / "text.ipynb")


def test_what_a_document_left_out_is_said(shell: InteractiveShell, tmp_path: Path) -> None:
    doc = {**_doc(), "omitted": {"spans": 12, "llm_calls": 12}}
    newer = {**_doc(span_id="ef" * 8), "version": 2}
    path = _notebook_with(tmp_path, doc)
    nb = json.loads(path.read_text())
    nb["cells"][0]["outputs"].append({"output_type": "display_data", "metadata": {},
                                      "data": {MIME_TYPE: newer}})
    path.write_text(json.dumps(nb))
    with pytest.warns(NotebookNote) as notes:
        assert llmtrace_nb.load(path) == 1
    said = " | ".join(str(n.message) for n in notes)
    assert "12 spans past the document's limit" in said
    assert "version 2 was skipped" in said
    row = llmtrace_nb.llm_calls_df().iloc[0]
    assert (row["model"], row["input_tokens"], row["cell"], row["cell_name"]) == (
        "gpt-4o-mini", 10, 3, "crafted")
    assert row["duration_ms"] == pytest.approx(2.25)
