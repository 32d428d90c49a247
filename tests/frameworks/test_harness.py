"""The harness itself: the kernel's environment and network guard, failing cells, pricing."""

from __future__ import annotations

import socket

import pytest
from genai_prices import Usage, calc_price

from llmtrace_nb.demo import DemoServer

from .checks import expected_totals
from .kernel import CellError, Kernel


def test_kernel_environment_network_guard_and_failing_cells(
        server: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.invalid:4318")
    monkeypatch.setenv("TRACELOOP_API_KEY", "not-a-key")
    with Kernel() as kernel:
        env = kernel.run("import os\nprint(sorted(k for k in os.environ\n"
                         "    if k.startswith(('OTEL_', 'TRACELOOP_'))))")
        assert env.strip() == "['TRACELOOP_TELEMETRY']"
        # loopback is allowed: the demo server answers
        kernel.run(f"import socket\nsocket.create_connection(('127.0.0.1', {server.port}),"
                   " timeout=5).close()")
        with pytest.raises(CellError, match="loopback only"):
            kernel.run("with socket.socket() as s:\n    s.settimeout(5)\n"
                       "    s.connect(('192.0.2.1', 80))")
        with pytest.raises(CellError, match=r"(?s)ZeroDivisionError.*1 / 0"):
            kernel.run("x = 1\n1 / 0")
        kernel.run("%load_ext llmtrace_nb")
        report = kernel.report()
    assert report["blocked"] == ["socket.connect 192.0.2.1"]
    assert report["spans"] == [] and report["llm_calls"] == []


def test_the_guard_refuses_name_lookups() -> None:
    with Kernel() as kernel:
        with pytest.raises(CellError, match="loopback only"):
            kernel.run("import socket\nsocket.getaddrinfo('example.com', 443)")
        assert kernel.run("print(_harness_blocked)").strip() == \
            "['socket.getaddrinfo example.com']"
    # the test process itself is not guarded
    assert socket.getaddrinfo("127.0.0.1", 80)


def test_expected_totals_price_cache_reads_and_writes() -> None:
    call = {"endpoint": "messages", "model": "claude-3-5-haiku-20241022", "stream": True,
            "input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 40,
            "cache_write_tokens": 30, "reasoning_tokens": 0}
    totals = expected_totals([call, {**call, "stream": False}])
    price = calc_price(Usage(input_tokens=100, cache_read_tokens=40, cache_write_tokens=30,
                             output_tokens=20), model_ref="claude-3-5-haiku-20241022",
                       provider_id="anthropic").total_price
    assert totals == {"calls": 2, "input_tokens": 200, "output_tokens": 40,
                      "cache_read_tokens": 80, "cache_write_tokens": 60,
                      "cost_usd": pytest.approx(2 * float(price), rel=1e-12)}
    # a cache write is dearer than an uncached input token for this model
    plain = calc_price(Usage(input_tokens=100, cache_read_tokens=40, output_tokens=20),
                       model_ref="claude-3-5-haiku-20241022", provider_id="anthropic")
    assert price > plain.total_price
