"""Notebooks executed for real: nbclient, a real ipykernel, the demo server."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError
from nbconvert import MarkdownExporter

from llmtrace_nb.__main__ import summary as shell_summary
from llmtrace_nb._shape.document import MIME_TYPE as MIME

from conftest import ROOT
from run_notebook import execute, tagged_text, write_outputs


def outputs_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", "") or out.get("data", {}).get("text/plain", ""))
        if out.get("output_type") == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "".join(parts)


def test_quickstart_executes_with_traces_and_costs(tmp_path: Path) -> None:
    source = ROOT / "notebooks" / "quickstart.ipynb"
    nb = execute(source)
    traced = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%trace")]
    assert len(traced) == 2
    for cell in traced:
        assert any(MIME in o.get("data", {}) for o in cell.outputs)  # a trace bundle
        text = outputs_text(cell)
        assert "LLM call" in text and "$" in text and "no price" not in text
    assert "quickstart · " in outputs_text(traced[0]) and "5 LLM calls" in outputs_text(traced[0])
    summary = tagged_text(nb, "summary")
    assert "gpt-4o-mini" in summary and "latency_p95_ms" in summary
    ipynb, html = write_outputs(nb, source, tmp_path)
    assert ipynb.exists() and "quickstart" in html.read_text(encoding="utf-8")
    # `jupyter nbconvert --to markdown` embeds the HTML twin as it is: read raw, its first
    # lines are the header and the costliest and slowest calls, and no blank line in it
    # ends the Markdown's HTML block early (the rest would be read as Markdown)
    markdown, _ = MarkdownExporter().from_notebook_node(nb)
    views = re.findall(r'<div class="llmtrace-view.*?</style></div>', markdown, re.S)
    assert len(views) == 2 and not any(re.search(r"\n\s*\n", v) for v in views)
    raw = [re.sub(r"<[^>]+>", "", line) for line in views[0].splitlines()]
    assert raw[1].startswith("cell [") and " quickstart · " in raw[1], raw[:3]
    assert "5 LLM calls" in raw[1] and "$0.0" in raw[1]
    top = raw[raw.index("costliest calls:") + 1]
    assert top.startswith("openai.chat · gpt-4o") and top.endswith("$0.000075"), top
    # what `make demo` prints after it: one readable block, from the saved notebook
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert shell_summary([str(ipynb)]) == 0
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("8 LLM calls in 2 traced cells, $")
    assert max(len(line) for line in lines) <= 100
    assert "cost" in lines[1] and "e-" not in printed.getvalue()  # dollars, not floats
    assert any(line.startswith("gpt-4o-mini") and "$0.0000" in line for line in lines)


def _notebook(path: Path, sources: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


SETUP = ("%load_ext llmtrace_nb\n"
         "import openai, llmtrace_nb\n"
         "from llmtrace_nb import demo\n"
         "server = demo.start()\n"
         "aclient = openai.AsyncOpenAI(base_url=server.base_url, api_key='x')\n"
         "client = openai.OpenAI(base_url=server.base_url, api_key='x')")


def test_kernel_await_display_and_errors(tmp_path: Path) -> None:
    """The ipykernel path: the cell runs in an asyncio task, post_run_cell outside it."""
    path = _notebook(tmp_path / "k.ipynb", [
        SETUP,
        "%%trace awaited\nimport asyncio\n"
        "rs = await asyncio.gather(*(aclient.chat.completions.create(model='gpt-4o-mini',\n"
        "    messages=[{'role': 'user', 'content': 'q'}]) for _ in range(4)))\n"
        "len(rs)",
        "%%trace sync\nclient.chat.completions.create(model='gpt-4o-mini',\n"
        "    messages=[{'role': 'user', 'content': 'q'}]).usage.total_tokens",
        "%%trace broken\nx = 1\nraise ValueError('boom')",
        "df = llmtrace_nb.spans_df()\n"
        "sorted(zip(df['cell_name'], df['kind'], df['status']))",
        "from opentelemetry import trace\n"
        "trace.get_current_span().get_span_context().is_valid",
    ])
    nb = execute(path, allow_errors=True)
    awaited, sync, broken, frame, leaked = nb.cells[1:]
    result = next(o for o in awaited.outputs if o["output_type"] == "execute_result")
    assert result["data"]["text/plain"] == "4"  # the last expression is displayed
    assert MIME in awaited.outputs[0]["data"]  # the view took the live line's place
    assert "awaited · " in outputs_text(awaited) and "4 LLM calls" in outputs_text(awaited)
    assert "sync · " in outputs_text(sync)
    error = next(o for o in broken.outputs if o["output_type"] == "error")
    assert error["ename"] == "ValueError"
    assert "line 3" in "".join(error["traceback"])
    assert "broken · " in outputs_text(broken)
    rows = outputs_text(frame)
    assert rows.count("('awaited', 'llm', 'ok')") == 4
    assert "('broken', 'cell', 'error')" in rows and "('sync', 'llm', 'ok')" in rows
    assert outputs_text(leaked) == "False"  # no cell's context outlives its cell


def test_budget_exceeded_stops_a_notebook_run(tmp_path: Path) -> None:
    path = _notebook(tmp_path / "b.ipynb", [
        SETUP,
        "%%trace --max-cost 0.0000001\nclient.chat.completions.create(model='gpt-4o',\n"
        "    messages=[{'role': 'user', 'content': 'an expensive question'}])\n'done'",
        "after_budget = True",
    ])
    with pytest.raises(CellExecutionError) as info:
        execute(path)
    assert "BudgetExceeded" in str(info.value)
    nb = execute(path, allow_errors=True)
    outputs = nb.cells[1].outputs
    kinds = [o["output_type"] for o in outputs]
    view = kinds.index("display_data")
    assert view < kinds.index("error")  # the trace view first, then the failure
    assert MIME in outputs[view]["data"]
    assert outputs[kinds.index("error")]["ename"] == "BudgetExceeded"


def test_live_line_updates_then_becomes_the_view() -> None:
    """The iopub messages of a traced cell in a real kernel: the live line is displayed,
    refreshed as calls end, and replaced in place by the trace view."""
    from jupyter_client.manager import start_new_kernel

    from run_notebook import ensure_kernel

    km, kc = start_new_kernel(kernel_name=ensure_kernel())
    try:
        for code in [SETUP, "server.set_latency(0.3)"]:
            reply = kc.execute_interactive(code, timeout=60)
            assert reply["content"]["status"] == "ok"
        messages: list[dict] = []
        reply = kc.execute_interactive(
            "%%trace live\nfor _ in range(4):\n"
            "    client.chat.completions.create(model='gpt-4o-mini',\n"
            "        messages=[{'role': 'user', 'content': 'hi'}])",
            timeout=60, output_hook=messages.append)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    shown = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
    first, updates = shown[0], shown[1:]
    assert first["msg_type"] == "display_data"
    assert first["content"]["data"]["text/plain"].startswith("⏳ live")
    display_id = first["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in updates)
    texts = [m["content"]["data"].get("text/plain", "") for m in updates[:-1]]
    assert any("LLM call" in t and not t.startswith("⏳ live · 0 LLM") for t in texts)
    assert len(updates) <= 4 * 2 + 4  # a few per second at most (about 1.2 s of calls)
    final = updates[-1]["content"]["data"]
    assert MIME in final and "text/html" in final
    assert final[MIME]["totals"]["llm_calls"] == 4


@pytest.mark.parametrize("name", ["cost-and-latency", "agents-and-tools",
                                  "prompt-iteration"])
def test_example_notebooks_execute_with_a_view_per_traced_cell(name: str,
                                                                tmp_path: Path) -> None:
    source = ROOT / "notebooks" / f"{name}.ipynb"
    nb = execute(source)
    traced = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%trace")]
    assert traced
    for cell in traced:
        views = [o for o in cell.outputs if MIME in o.get("data", {})]
        assert len(views) == 1
        assert views[0]["data"][MIME]["totals"]["llm_calls"] > 0
    ipynb, html = write_outputs(nb, source, tmp_path)
    page = html.read_text(encoding="utf-8")
    # the executed notebook is a source: its saved traces give the same totals in a shell
    docs = [o["data"][MIME] for c in nb.cells for o in c.get("outputs", [])
            if MIME in o.get("data", {})]
    calls = sum(d["totals"]["llm_calls"] for d in docs)
    done = subprocess.run([sys.executable, "-m", "llmtrace_nb", "summary", str(ipynb)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{calls:,} LLM call{'s' if calls != 1 else ''} in "
                                  f"{len(docs)} traced cell")
    # the static twin is what nbconvert exports: the waterfall's rows are in the page
    assert page.count("<details") >= len(traced) and "LLM call" in page


def test_prompt_iteration_judges_and_compares_the_two_runs() -> None:
    from llmtrace_nb.views.compare import MIME_TYPE as COMPARE

    nb = execute(ROOT / "notebooks" / "prompt-iteration.ipynb")
    (shown,) = [o["data"][COMPARE] for c in nb.cells for o in c.get("outputs", [])
                if COMPARE in o.get("data", {})]
    assert shown["labels"] == ["prompt=v1", "prompt=v2"]
    assert [t["calls"] for t in shown["totals"]] == [4, 4]
    passes = [next(j["pass_rate"] for j in side if j["name"] == "names_the_country")
              for side in shown["judgements"]]
    assert passes == [0.0, 1.0]
    feedback = [j["name"] for side in shown["judgements"] for j in side]
    assert feedback.count("feedback") == 2  # a thumbs down on v1, a thumbs up on v2
    summary = tagged_text(nb, "summary")
    assert "names_the_country_pass_rate" in summary
