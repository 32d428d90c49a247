"""A short run of the benchmark suite: proves it still runs (figures are not judged here)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.__main__ import main


def test_benchmarks_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    for case in ("bare SDK span", "collector overhead", "spans_df() cold at 2,000 spans",
                 "spans_df() after 1k new spans", "trace view of a 100-span cell",
                 "memory per retained LLM span", "refused OTLP endpoint: added time",
                 "black hole OTLP endpoint: added time", "forwarding throughput",
                 "inside a traced cell", "llm_calls_df() + summary()",
                 "LLM spans with messages", "buffer full", "heap aged by"):
        assert case in out
    assert " µs " in out and " ms " in out


def test_a_case_group_runs_in_its_own_interpreter() -> None:
    """The full run's plumbing: one case group in a fresh interpreter, results read back."""
    from benchmarks.__main__ import run_isolated

    (result,) = run_isolated("memory")
    assert result.case == "memory per retained LLM span (100,000 kept)"
    assert result.unit == "KB" and 0 < result.runs[0] < 4 and result.met is True


def test_a_per_span_run_gets_its_own_interpreter() -> None:
    """Each per-span run of the full benchmark starts from a fresh heap."""
    from benchmarks.__main__ import _isolated_variant_run

    bare, ours = _isolated_variant_run("in_cell", 20_000)
    assert len(bare) == len(ours) == 20  # blocks of 1,000 spans
    assert all(0 < b < 1_000 for b in bare) and all(0 < o < 1_000 for o in ours)  # µs


def test_phoenix_side_by_side_runs() -> None:
    """The Phoenix case of `make bench`, small: both DataFrames hold the cell's spans."""
    from IPython.core.interactiveshell import InteractiveShell

    from benchmarks.phoenix import one_run

    run = one_run(InteractiveShell.instance(), 20, deadline_s=120)
    assert 0 < run.ours_s < run.phoenix_s
    assert run.phoenix_rows >= 21 + 11  # the measured cell and the warm-up cell


def test_real_path_cases_run() -> None:
    """The real-path cases of `make bench`, small: a real kernel's memory per call, and
    per-call runs of the bare client, the instrumentation alone and ours in fresh
    interpreters (Phoenix's venv is exercised by the Phoenix tests)."""
    from benchmarks import real_path

    kb = real_path.memory_per_call(100)["kb_per_call"]
    assert 0 < kb < 50
    runs = real_path.per_call(20, 1, None)
    assert set(runs) == {f"{v}{s}{p}" for v in ("bare", "instrumentation", "ours")
                         for s in ("", ":stream") for p in ("", ":paired")}
    assert all(len(v) == 1 and 0 < v[0] < 1_000_000 for k, v in runs.items()
               if not k.endswith(":paired"))  # µs
    # the paired figures are differences: any sign, but far below a call's own time
    assert all(len(v) == 1 and abs(v[0]) < 1_000_000 for k, v in runs.items()
               if k.endswith(":paired"))


def test_saved_output_case_runs() -> None:
    from benchmarks import saved_output

    sizes = saved_output.measure()
    assert set(sizes) == {(o, n) for o in saved_output.OUTPUTS for n in saved_output.SIZES}
    assert sizes[("compact", 100)] < sizes[("full", 100)]


def test_the_paired_measurement_traces_only_one_side(shell: Any, demo_server: Any) -> None:
    """per_call_client.paired switches tracing off for every other block through the
    suppression flag: the calls of those blocks make no span, the others one each."""
    import openai

    import llmtrace_nb

    from benchmarks import per_call_client

    client = openai.OpenAI(base_url=demo_server.base_url, api_key="sk-demo", max_retries=0)
    before = len(llmtrace_nb.llm_calls_df())
    per_call_client.paired(client, False, True, 2)
    assert len(llmtrace_nb.llm_calls_df()) - before == 2 * per_call_client.BLOCK
    per_call_client.paired(client, False, False, 2)  # bare: both sides traced alike
    assert len(llmtrace_nb.llm_calls_df()) - before == 6 * per_call_client.BLOCK
