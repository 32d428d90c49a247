"""%%trace and %llmtrace through a real IPython InteractiveShell."""

from __future__ import annotations

import os
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._notebook import session

from conftest import run


def test_trace_runs_cell_and_records_root_span(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%trace my run --tag team=search model=4o\n"
                             "from opentelemetry import trace\n"
                             "with trace.get_tracer('t').start_as_current_span('step'):\n"
                             "    x = 21\n"
                             "x * 2")
    assert result.success and result.result == 42  # the last expression is displayed
    number = result.execution_count
    df = llmtrace_nb.spans_df()
    root = df[df["kind"] == "cell"].iloc[0]
    step = df[df["name"] == "step"].iloc[0]
    assert root["name"] == "my run" and root["cell"] == number
    assert step["parent_span_id"] == root["span_id"] and step["trace_id"] == root["trace_id"]
    assert step["cell"] == number and step["cell_name"] == "my run"
    assert root["attributes"]["llmtrace.tag.team"] == "search"
    cells = llmtrace_nb.cells_df()
    assert cells["tags"].tolist() == [{"team": "search", "model": "4o"}]
    assert "my run ·" in out.text and "0 LLM calls" in out.text


def test_default_name_and_quiet(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%trace --quiet\ny = 1")
    assert result.success and out.text == ""
    df = llmtrace_nb.spans_df()
    assert df["name"].tolist() == [f"cell [{result.execution_count}]"]
    assert shell.user_ns["y"] == 1


def test_exception_marks_root_error_and_propagates(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%trace failing\na = 1\nb = a / 0\n")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    root = llmtrace_nb.spans_df().iloc[0]
    assert root["status"] == "error" and root["error_type"] == "ZeroDivisionError"
    # the traceback points at the body's own line: the %%trace line still counts as line 1
    assert "line 3" in out.text
    assert "failing ·" in out.text and "1 error" in out.text


def test_top_level_await_and_asyncio_tasks_belong_to_the_cell(shell: InteractiveShell) -> None:
    result, _ = run(shell, "%%trace async\n"
                           "import asyncio\n"
                           "from opentelemetry import trace\n"
                           "async def work(i):\n"
                           "    with trace.get_tracer('t').start_as_current_span(f'task{i}'):\n"
                           "        await asyncio.sleep(0.01)\n"
                           "    return i\n"
                           "await asyncio.gather(*(work(i) for i in range(5)))")
    assert result.success and result.result == [0, 1, 2, 3, 4]
    df = llmtrace_nb.spans_df()
    root = df[df["kind"] == "cell"].iloc[0]
    tasks = df[df["name"].str.startswith("task")]
    assert len(tasks) == 5
    assert (tasks["parent_span_id"] == root["span_id"]).all()
    assert (tasks["cell"] == result.execution_count).all()


def test_threads_belong_to_the_cell(shell: InteractiveShell) -> None:
    result, _ = run(shell, "%%trace threads\n"
                           "import contextvars, threading\n"
                           "from concurrent.futures import ThreadPoolExecutor\n"
                           "from opentelemetry import trace\n"
                           "tracer = trace.get_tracer('t')\n"
                           "def work(name):\n"
                           "    with tracer.start_as_current_span(name):\n"
                           "        pass\n"
                           "with ThreadPoolExecutor(4) as pool:\n"
                           "    list(pool.map(work, [f'pool{i}' for i in range(8)]))\n"
                           "# a thread that deliberately runs without the cell's context\n"
                           "t = threading.Thread(target=lambda: contextvars.Context().run(\n"
                           "    work, 'bare'))\n"
                           "t.start(); t.join()")
    assert result.success
    df = llmtrace_nb.spans_df()
    root = df[df["kind"] == "cell"].iloc[0]
    pool = df[df["name"].str.startswith("pool")]
    assert len(pool) == 8 and (pool["parent_span_id"] == root["span_id"]).all()
    bare = df[df["name"] == "bare"].iloc[0]
    assert bare["trace_id"] != root["trace_id"]  # no propagated context...
    assert bare["cell"] == result.execution_count  # ...but stamped with the running cell


def _llm_span_cell(model: str = "gpt-4o", tokens: int = 1_000_000) -> str:
    return ("from opentelemetry import trace\n"
            "with trace.get_tracer('t').start_as_current_span('openai.chat', attributes={\n"
            "    'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai',\n"
            f"    'gen_ai.request.model': '{model}', 'gen_ai.usage.input_tokens': {tokens},\n"
            "    'gen_ai.usage.output_tokens': 10}):\n"
            "    pass\n")


def test_max_cost_raises_budget_exceeded_after_the_summary(shell: InteractiveShell) -> None:
    result, out = run(shell, "%%trace --max-cost 0.01\n" + _llm_span_cell())
    assert isinstance(result.error_in_exec, llmtrace_nb.BudgetExceeded)
    assert result.error_in_exec.cost_usd > 0.01
    # the view is displayed and the error raised (their order is checked in a real kernel,
    # test_notebooks.py: a plain shell captures prints and displays separately)
    assert "1 LLM call" in out.text and "BudgetExceeded" in out.stdout
    result, _ = run(shell, "%%trace --max-cost 100\n" + _llm_span_cell())
    assert result.success


def test_max_latency(shell: InteractiveShell) -> None:
    result, _ = run(shell, "%%trace --max-latency 0.01 --quiet\nimport time; time.sleep(0.05)")
    assert isinstance(result.error_in_exec, llmtrace_nb.BudgetExceeded)
    assert result.error_in_exec.latency_s >= 0.05
    result, _ = run(shell, "%%trace --max-latency 30 --quiet\nimport time; time.sleep(0.01)")
    assert result.success


def test_unpriced_model_is_named_in_the_summary(shell: InteractiveShell) -> None:
    _, out = run(shell, "%%trace\n" + _llm_span_cell("house-model", 100))
    assert "no price" in out.text and "house-model" in out.text


@pytest.mark.parametrize("line", [
    "--max-cost abc", "--max-cost -1", "--max-latency 0", "--tag novalue", "--nope", "--tag",
])
def test_bad_trace_arguments_print_usage_and_run_nothing(shell: InteractiveShell,
                                                         line: str) -> None:
    shell.user_ns.pop("ran", None)
    result, out = run(shell, f"%%trace {line}\nran = True")
    assert "usage: %%trace" in out.text + out.stderr
    assert "ran" not in shell.user_ns
    assert not result.success
    assert len(llmtrace_nb.spans_df()) == 0


def test_status_clear_content_price(shell: InteractiveShell) -> None:
    run(shell, "%%trace --quiet\n" + _llm_span_cell("house-model", 100))
    _, out = run(shell, "%llmtrace")
    assert "spans: 2 kept" in out.text and "no price for: house-model" in out.text
    assert "openai" in out.text and "threading" in out.text
    run(shell, "%llmtrace price house-model 1 2 0.5")
    df = llmtrace_nb.llm_calls_df()
    assert df["cost_usd"].tolist() == [pytest.approx((100 * 1 + 10 * 2) / 1e6)]
    run(shell, "%llmtrace content off")
    assert os.environ["TRACELOOP_TRACE_CONTENT"] == "false"
    assert not session.require().capture_content
    run(shell, "%llmtrace content on")
    assert os.environ["TRACELOOP_TRACE_CONTENT"] == "true"
    _, out = run(shell, "%llmtrace clear")
    assert "cleared 2 spans" in out.text and len(llmtrace_nb.spans_df()) == 0


@pytest.mark.parametrize(("line", "usage"), [
    ("bogus", "%llmtrace forward URL"), ("auto maybe", "%llmtrace auto on|off"),
    ("content sometimes", "%llmtrace content on|off"), ("content", "%llmtrace content on|off"),
    ("price m 1", "%llmtrace price MODEL"), ("price m x 1", "%llmtrace price MODEL"),
    ("price m a b", "%llmtrace price MODEL"), ("price m -1 2", "%llmtrace price MODEL"),
    ("status extra", "%llmtrace [status]"),
    ("load /nonexistent/dir/spans.jsonl", "%llmtrace save PATH / load PATH"),
    ("save /nonexistent/dir/spans.jsonl", "%llmtrace save PATH / load PATH")])
def test_bad_llmtrace_commands(shell: InteractiveShell, line: str, usage: str) -> None:
    """Every error says what was wrong and shows that command's usage."""
    before = (session.require().auto, session.require().capture_content)
    _, out = run(shell, f"%llmtrace {line}")
    text = out.text + out.stderr
    assert "UsageError" in text and "usage:" in text and usage in text
    assert (session.require().auto, session.require().capture_content) == before


def test_line_magics_ignore_a_trailing_comment(shell: InteractiveShell, tmp_path: Any) -> None:
    """As README's blocks write them: `%llmtrace save run-1.jsonl   # or …`."""
    path = tmp_path / "run-1.jsonl"
    result, out = run(shell, f"%llmtrace save {path}        # or llmtrace_nb.save(...)")
    assert result.success and path.exists(), out.text
    result, out = run(shell, "%llmtrace auto off   # a comment")
    assert result.success and "auto mode off" in out.text


def test_auto_mode_shows_only_cells_with_llm_calls(shell: InteractiveShell) -> None:
    run(shell, "%llmtrace auto on")
    result, out = run(shell, "z = 1 + 1")
    assert result.success and out.text == ""
    result, out = run(shell, _llm_span_cell("gpt-4o-mini", 100))
    assert "1 LLM call" in out.text
    df = llmtrace_nb.spans_df()
    assert df["cell"].tolist() == [result.execution_count]
    assert (df["kind"] != "cell").all()  # auto mode adds no root spans
    # %%trace in auto mode: one root span, not two
    result, _ = run(shell, "%%trace --quiet\n" + _llm_span_cell("gpt-4o-mini", 100))
    df = llmtrace_nb.spans_df()
    assert (df["kind"] == "cell").sum() == 1
    run(shell, "%llmtrace auto off")
    _, out = run(shell, _llm_span_cell("gpt-4o-mini", 100))
    assert out.text == ""
    assert llmtrace_nb.spans_df()["cell"].isna().sum() == 1


def test_nested_trace_via_run_cell_magic(shell: InteractiveShell) -> None:
    result, _ = run(shell, "%%trace outer --quiet\n"
                           "get_ipython().run_cell_magic('trace', 'inner --quiet', 'v = 5')")
    assert result.success and shell.user_ns["v"] == 5
    df = llmtrace_nb.spans_df().set_index("name")
    assert df.loc["inner", "parent_span_id"] == df.loc["outer", "span_id"]
    assert df.loc["inner", "kind"] == "cell"


def _collectors() -> int:
    from llmtrace_nb._capture.collector import SpanCollector

    procs = session.require().provider._active_span_processor._span_processors
    return sum(isinstance(p, SpanCollector) for p in procs)


def _openai_wrapped() -> bool:
    from openai.resources.chat.completions import Completions

    return hasattr(vars(Completions)["create"], "_self_wrapper")


def test_load_twice_reload_unload_load(shell: InteractiveShell) -> None:
    run(shell, "%%trace --quiet\n" + _llm_span_cell("gpt-4o-mini", 1))
    _, out = run(shell, "%load_ext llmtrace_nb")
    assert "already loaded" in out.text
    assert _collectors() == 1 and _openai_wrapped()
    run(shell, "%reload_ext llmtrace_nb")
    assert _collectors() == 1 and _openai_wrapped()
    assert len(llmtrace_nb.spans_df()) == 2  # spans survive a reload
    run(shell, "%%trace --quiet\n" + _llm_span_cell("gpt-4o-mini", 1))
    assert len(llmtrace_nb.spans_df()) == 4  # nothing duplicated
    assert len(shell.events.callbacks["pre_run_cell"]) == len(
        set(shell.events.callbacks["pre_run_cell"]))

    run(shell, "%unload_ext llmtrace_nb")
    assert not _openai_wrapped()
    result, out = run(shell, "%%trace\n" + _llm_span_cell("gpt-4o-mini", 1))
    assert not result.success  # the magic is gone with the extension
    assert len(llmtrace_nb.spans_df()) == 4  # not collecting, but still readable

    _, out = run(shell, "%load_ext llmtrace_nb")
    assert "llmtrace_nb: spans kept in-process" in out.text
    assert _collectors() == 1 and _openai_wrapped()
    run(shell, "%%trace --quiet\n" + _llm_span_cell("gpt-4o-mini", 1))
    assert len(llmtrace_nb.spans_df()) == 6
