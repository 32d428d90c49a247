"""A short run of the benchmark suite: proves it still runs (figures are not judged here)."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import main


def test_benchmarks_quick_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    for case in ("bare SDK span", "collector overhead", "spans_df() cold at 2,000 spans",
                 "spans_df() after 1k new spans", "trace view of a 100-span cell",
                 "memory per retained LLM span", "refused OTLP endpoint: added time",
                 "black hole OTLP endpoint: added time", "forwarding throughput"):
        assert case in out
    assert " µs " in out and " ms " in out
