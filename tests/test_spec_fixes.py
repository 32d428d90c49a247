"""README as a spec: promises that did not hold as written (each failed before its fix)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb.demo import DemoServer

from conftest import run


def test_demo_is_reachable_after_import_llmtrace_nb() -> None:
    """The 30-second example: `OpenAI(base_url=llmtrace_nb.demo.start().base_url, ...)`,
    without importing the demo module first, and loading the extension does not pay
    for it."""
    code = ("import sys, llmtrace_nb\n"
            "assert 'llmtrace_nb.demo' not in sys.modules\n"
            "server = llmtrace_nb.demo.start()\n"
            "print(server.base_url); server.stop()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("http://127.0.0.1:")


def test_a_price_override_covers_dated_snapshots(shell: InteractiveShell,
                                                 demo_server: DemoServer) -> None:
    import openai

    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url, api_key="x")
    run(shell, "%%trace\nclient.chat.completions.create(model='gpt-4o-mini', "
               "messages=[{'role': 'user', 'content': 'hi'}])")
    row = llmtrace_nb.llm_calls_df().iloc[-1]
    assert row["model"] == "gpt-4o-mini-2024-07-18"
    llmtrace_nb.set_price("gpt-4o-mini", 100, 100)
    row = llmtrace_nb.llm_calls_df().iloc[-1]
    tokens = row["input_tokens"] + row["output_tokens"]
    assert row["cost_usd"] == pytest.approx(tokens * 100 / 1e6)
    assert "gpt-4o-mini: $100 in / $100 out per Mtok (also gpt-4o-mini-2024-07-18)" in (
        llmtrace_nb.status())
    # an exact dated override wins
    llmtrace_nb.set_price("gpt-4o-mini-2024-07-18", 1, 1)
    row = llmtrace_nb.llm_calls_df().iloc[-1]
    assert row["cost_usd"] == pytest.approx(tokens * 1 / 1e6)


def test_loading_a_file_twice_adds_nothing_the_second_time(shell: InteractiveShell,
                                                           tmp_path: Path) -> None:
    run(shell, "%%trace\nimport llmtrace_nb\nwith llmtrace_nb.span('a', kind='tool'): pass")
    path = tmp_path / "spans.jsonl"
    llmtrace_nb.save(path)
    spans, cells = len(llmtrace_nb.spans_df()), len(llmtrace_nb.cells_df())
    # into the session it came from
    _, out = run(shell, f"%llmtrace load {path}")
    assert "read 0 spans" in out.text and "(2 spans already loaded)" in out.text
    assert (len(llmtrace_nb.spans_df()), len(llmtrace_nb.cells_df())) == (spans, cells)
    # into a fresh one, twice
    run(shell, "%llmtrace clear")
    assert llmtrace_nb.load(path) == 2 and llmtrace_nb.load(path) == 0
    assert len(llmtrace_nb.spans_df()) == 2 and len(llmtrace_nb.cells_df()) == 1


def test_a_finished_call_without_error_is_ok(shell: InteractiveShell,
                                             demo_server: DemoServer) -> None:
    """Plain OpenAI calls came out `unset` and streamed ones `ok`; a 429 retried into
    success reads `ok`, as README says."""
    import openai

    demo_server.fail_next(429, retry_after=0.01)
    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url, api_key="x",
                                            max_retries=2)
    result, _ = run(shell, "%%trace\nclient.chat.completions.create(model='gpt-4o-mini', "
                           "messages=[{'role': 'user', 'content': 'hi'}])\n"
                           "for _ in client.chat.completions.create(model='gpt-4o-mini', "
                           "messages=[{'role': 'user', 'content': 'hi'}], stream=True): pass")
    assert result.success
    calls = llmtrace_nb.llm_calls_df()
    assert list(calls["status"]) == ["ok", "ok"]
    plain = calls[~calls["is_streaming"].fillna(False)].iloc[0]
    assert plain["attributes"]["otel.status_code"] == "UNSET"  # the raw status kept
    cost = calc_price(Usage(input_tokens=int(plain["input_tokens"]),
                            output_tokens=int(plain["output_tokens"])),
                      model_ref="gpt-4o-mini-2024-07-18", provider_id="openai").total_price
    assert plain["cost_usd"] == pytest.approx(float(cost))
