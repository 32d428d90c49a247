"""%%trace and %llmtrace through a real IPython InteractiveShell."""

from __future__ import annotations

import os
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._notebook import magics, session

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


@pytest.mark.parametrize(("line", "command", "usage"), [
    ("bogus", None, "usage: %llmtrace status\n       %llmtrace auto on|off"),
    ("auto maybe", "auto", "usage: %llmtrace auto on|off"),
    ("content sometimes", "content", "usage: %llmtrace content on|off"),
    ("content", "content", "usage: %llmtrace content on|off"),
    ("price m 1", "price", "usage: %llmtrace price MODEL IN OUT [CACHE_READ] [CACHE_WRITE]"),
    ("price m x 1", "price", "usage: %llmtrace price MODEL"),
    ("price m a b", "price", "usage: %llmtrace price MODEL"),
    ("price m -1 2", "price", "usage: %llmtrace price MODEL"),
    ("status extra", "status", "usage: %llmtrace status"),
    ("load /nonexistent/dir/spans.jsonl", "load", "usage: %llmtrace load PATH"),
    ("save /nonexistent/dir/spans.jsonl", "save", "usage: %llmtrace save PATH"),
    ("forward", "forward", "usage: %llmtrace forward [--protocol http/protobuf|grpc]"),
    ("help nope", "help", "usage: %llmtrace help [COMMAND]")])
def test_bad_llmtrace_commands(shell: InteractiveShell, line: str, command: str | None,
                               usage: str) -> None:
    """Every error names the command, says what was wrong and shows that command's usage
    (argparse's: the whole %llmtrace usage for an unknown command)."""
    before = (session.require().auto, session.require().capture_content)
    _, out = run(shell, f"%llmtrace {line}")
    text = out.text + out.stderr
    parser = magics._llmtrace_parser
    parser = parser.subcommands[command] if command else parser
    assert f"UsageError: {parser.prog}: " in text
    assert parser.format_usage().rstrip() in text and usage in text
    assert (session.require().auto, session.require().capture_content) == before


def test_line_magics_ignore_a_trailing_comment(shell: InteractiveShell, tmp_path: Any) -> None:
    """As README's blocks write them: `%llmtrace save run-1.jsonl   # or …`."""
    path = tmp_path / "run-1.jsonl"
    result, out = run(shell, f"%llmtrace save {path}        # or llmtrace_nb.save(...)")
    assert result.success and path.exists(), out.text
    result, out = run(shell, "%llmtrace auto off   # a comment")
    assert result.success and "auto mode off" in out.text


def test_forward_ignores_a_trailing_comment(shell: InteractiveShell) -> None:
    try:
        result, out = run(shell, "%llmtrace forward http://x:4318   # a comment")
        assert result.success, out.stderr
        assert "forwarding to http://x:4318/v1/traces" in out.text
        assert session.require().forwarder.config.endpoint == "http://x:4318/v1/traces"
    finally:
        _, out = run(shell, "%llmtrace forward off  # and off")
        assert "forwarding off" in out.text


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


# -- the parsers: argparse subcommands, usage and help generated -------------------------


@pytest.mark.parametrize(("line", "command", "parsed"), [
    ("", "status", {}),
    ("status", "status", {}),
    ("clear", "clear", {}),
    ("auto on", "auto", {"mode": True}),
    ("auto no", "auto", {"mode": False}),
    ("content off", "content", {"mode": False}),
    ("content 1", "content", {"mode": True}),
    ("price m 1 2", "price",
     {"model": "m", "input": 1.0, "output": 2.0, "cache_read": None, "cache_write": None}),
    ("price gpt-4o 2.5 10 1.25 3", "price",
     {"model": "gpt-4o", "input": 2.5, "output": 10.0, "cache_read": 1.25,
      "cache_write": 3.0}),
    ("save 'a run.jsonl'", "save", {"path": "a run.jsonl"}),
    ("load run-1.jsonl  # or llmtrace_nb.load", "load", {"path": "run-1.jsonl"}),
    ("forward off", "forward",
     {"url": "off", "protocol": None, "header": None, "only": None, "redact": None}),
    ("forward http://x:4318   # a comment", "forward",
     {"url": "http://x:4318", "protocol": None, "header": None, "only": None,
      "redact": None}),
    ('forward https://h/otel --protocol grpc --header "Authorization=Basic a b" x-k=v '
     "--header y=1 --only errors,slow:2 --redact hash", "forward",
     {"url": "https://h/otel", "protocol": "grpc",
      "header": ["Authorization=Basic a b", "x-k=v", "y=1"], "only": "errors,slow:2",
      "redact": "hash"}),
    ("help", "help", {"topic": None}),
    ("help forward", "help", {"topic": "forward"}),
])
def test_each_subcommand_parses_its_arguments(line: str, command: str,
                                              parsed: dict[str, Any]) -> None:
    name, args, parser = magics.parse_llmtrace_line(line)
    assert name == command and parser is magics._llmtrace_parser.subcommands[command]
    assert parser.prog == f"%llmtrace {command}"
    assert vars(args) == {"command": command, **parsed}


@pytest.mark.parametrize(("line", "command", "problem"), [
    ("auto maybe", "auto", "argument on|off: expected on or off, got 'maybe'"),
    ("content", "content", "the following arguments are required: on|off"),
    ("clear all", "clear", "unrecognized arguments: all"),
    ("status --verbose", "status", "unrecognized arguments: --verbose"),
    ("price m 1", "price", "the following arguments are required: OUT"),
    ("price m 1 2 3 4 5", "price", "unrecognized arguments: 5"),
    ("price m 1 nan", "price",
     "argument OUT: expected USD per million tokens, a number >= 0, got 'nan'"),
    ("save", "save", "the following arguments are required: PATH"),
    ("load a b", "load", "unrecognized arguments: b"),
    ("forward", "forward", "the following arguments are required: URL|off"),
    ("forward off now", "forward", "unrecognized arguments: now"),
    ("forward http://h --header", "forward", "argument --header: expected at least one"),
    ("forward http://h --bogus 1", "forward", "unrecognized arguments: --bogus 1"),
    ("help nope", "help", "argument COMMAND: invalid choice: 'nope'"),
])
def test_a_bad_argument_is_a_usage_error_with_argparses_usage_of_that_subcommand(
        line: str, command: str, problem: str) -> None:
    parser = magics._llmtrace_parser.subcommands[command]
    with pytest.raises(UsageError) as caught:
        magics.parse_llmtrace_line(line)
    first, usage = str(caught.value).split("\n", 1)
    assert first.startswith(f"%llmtrace {command}: {problem}")
    assert usage == parser.format_usage().rstrip()
    assert usage.startswith(f"usage: %llmtrace {command}")


@pytest.mark.parametrize("line", ["bogus", "'unclosed", "--nope"])
def test_no_command_is_a_usage_error_with_every_commands_usage(line: str) -> None:
    with pytest.raises(UsageError) as caught:
        magics.parse_llmtrace_line(line)
    text = str(caught.value)
    assert text.startswith("%llmtrace: ")
    for sub in magics._llmtrace_parser.subcommands.values():
        assert sub.format_usage().rstrip().removeprefix("usage: ") in text


def test_the_help_lists_every_subcommand_with_its_usage() -> None:
    text = magics._llmtrace_parser.format_help()
    assert list(magics._llmtrace_parser.subcommands) == [*magics.COMMANDS, "help"]
    for name, command in magics.COMMANDS.items():
        usage = magics._llmtrace_parser.subcommands[name].format_usage()
        assert usage.rstrip().removeprefix("usage: ") in text
        assert f"\n    {name} " in text
        assert " ".join(command.help.split()) in " ".join(text.split())  # wrapped
    assert text.startswith("usage: %llmtrace status\n       %llmtrace auto on|off\n")
    assert "%%trace" in text and "%trace " not in text.replace("%%trace", "")
    # %llmtrace? shows it, as magic_arguments would
    assert magics.TraceMagics.llmtrace.__doc__ == text


def test_the_help_is_generated_from_the_command_table() -> None:
    """A command added to (a copy of) the table is parsed, and shows in usage and help."""
    seen = []
    extra = magics.Command("an extra command for this test", lambda a, p: seen.append(a),
                           lambda p: p.add_argument("thing", metavar="THING"))
    parser = magics.build_llmtrace_parser({**magics.COMMANDS, "extra": extra})
    help_text = parser.format_help()
    assert "%llmtrace extra THING" in help_text and "an extra command" in help_text
    name, args, sub = magics.parse_llmtrace_line("extra it", parser)
    assert (name, args.thing, sub.prog) == ("extra", "it", "%llmtrace extra")
    with pytest.raises(UsageError, match=r"(?s)^%llmtrace extra: .*\nusage: "
                                         r"%llmtrace extra THING$"):
        magics.parse_llmtrace_line("extra", parser)
    assert "extra" not in magics._llmtrace_parser.format_help()  # the real one unchanged


def test_help_and_dash_h_print_help_without_an_error(shell: InteractiveShell) -> None:
    result, out = run(shell, "%llmtrace help")
    assert result.success and out.stdout == magics._llmtrace_parser.format_help()
    for line in ("help forward", "forward -h", "forward http://x:4318 --help"):
        result, out = run(shell, f"%llmtrace {line}")
        forward = magics._llmtrace_parser.subcommands["forward"]
        assert result.success and out.stdout == forward.format_help(), line
    assert session.require().forwarder.config is None  # -h ran nothing
    result, out = run(shell, "%llmtrace -h")
    assert result.success and out.stdout == magics._llmtrace_parser.format_help()
    # a bare %llmtrace is still the status
    _, out = run(shell, "%llmtrace")
    assert out.stdout == llmtrace_nb.status() + "\n"


@pytest.mark.parametrize(("line", "problem"), [
    ("--max-cost abc", "argument --max-cost: expected a number >= 0, got 'abc'"),
    ("--max-latency 0", "argument --max-latency: expected a number > 0, got '0'"),
    ("--tag novalue", "argument --tag: expected KEY=VALUE, got 'novalue'"),
    ("name --nope", "unrecognized arguments: --nope"),
    ("'unclosed", "No closing quotation"),
])
def test_trace_usage_is_argparses(line: str, problem: str) -> None:
    with pytest.raises(UsageError) as caught:
        magics.parse_trace_line(line)
    usage = magics._trace_parser.format_usage().rstrip()
    assert str(caught.value) == f"%%trace: {problem}\n{usage}"
    assert magics._trace_parser.format_usage() == (
        "usage: %%trace [--quiet] [--max-cost USD] [--max-latency SECONDS] "
        "[--tag KEY=VALUE [KEY=VALUE ...]] [NAME ...]\n")


def test_trace_arguments_parse_as_before() -> None:
    opts = magics.parse_trace_line(" my run --tag team=search model=4o --tag ' k '=v=w "
                                   "--max-cost 0.5 --max-latency 3 --quiet  # comment")
    assert opts == magics.TraceOptions(name="my run", quiet=True, max_cost=0.5,
                                       max_latency=3.0,
                                       tags={"team": "search", "model": "4o", "k": "v=w"})
    assert magics.parse_trace_line("") == magics.TraceOptions()
    assert magics.parse_trace_line("--max-c 0").max_cost == 0  # abbreviations, as before
