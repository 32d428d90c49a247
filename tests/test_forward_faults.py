"""Forwarding against endpoints that hold a request or answer it wrongly, on loopback.

An export has a total deadline (``EXPORT_TIMEOUT_S``), at most one flush runs at a time,
and only a 2xx answer counts as sent.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from IPython.core.interactiveshell import InteractiveShell
from test_forward import llm_cell, run_py

from llmtrace_nb import session
from llmtrace_nb.ship.forward import EXPORT_TIMEOUT_S, make_config

from conftest import Output, run
from otlp_receiver import black_hole, drip, receiver

#: how late a failure may be counted after the deadline: thread switches, a slow CI box
SLACK_S = 3.0
CELLS = 50


@pytest.fixture
def fwd(shell: InteractiveShell) -> Iterator[InteractiveShell]:
    yield shell
    run(shell, "%llmtrace forward off")


def flush_threads() -> int:
    return sum(t.name == "llmtrace-forward-flush" for t in threading.enumerate())


def no_flush_left() -> None:
    """An earlier test's destination, stopped, may still be finishing its last export."""
    assert wait_for(lambda: flush_threads() == 0, EXPORT_TIMEOUT_S + SLACK_S) < float("inf")


def counts() -> dict[str, int]:
    forwarder = session.require().forwarder
    assert forwarder is not None
    c = forwarder.counts()
    assert c is not None
    return c


def wait_for(predicate: Callable[[], object], timeout: float) -> float:
    """Seconds until ``predicate()`` held (polling every 20 ms), or inf."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)
    return float("inf")


def told(out: Output) -> list[int]:
    """The span counts of the failure warnings a cell printed."""
    return [int(n.replace(",", "")) for n in
            re.findall(r"([\d,]+) spans? could not be forwarded", out.stderr)]


@contextmanager
def stuck_endpoint(kind: str) -> Iterator[str]:
    if kind == "black hole":
        with black_hole() as url:
            yield url
    else:
        with drip(kind.removeprefix("drip ")) as server:
            yield server.url


def held_by(fwd: InteractiveShell, url: str, deadline: float, protocol: str = "http/protobuf",
            ) -> None:
    """N traced cells against an endpoint that never finishes answering: the cells stay
    fast, at most one flush thread runs, and the first export fails within its deadline,
    counted and told once."""
    no_flush_left()
    forwarder = session.require().forwarder
    assert forwarder is not None
    forwarder.start(make_config(url, protocol=protocol, timeout_s=deadline))
    outs: list[Output] = []
    first = time.monotonic()
    failed_at = float("inf")
    most = 0
    for _ in range(CELLS):
        start = time.perf_counter()
        result, out = run(fwd, "%%trace --quiet\n" + llm_cell())
        assert result.success and time.perf_counter() - start < 1.0
        outs.append(out)
        most = max(most, flush_threads())
        if counts()["failed"] and failed_at == float("inf"):
            failed_at = time.monotonic() - first
    assert most <= 1, f"{most} flush threads after {CELLS} cells"
    # the first export (the first cell's spans) fails within the deadline
    if failed_at == float("inf"):
        wait_for(lambda: counts()["failed"] > 0, deadline + SLACK_S - (time.monotonic() - first))
        failed_at = time.monotonic() - first if counts()["failed"] else failed_at
    assert failed_at <= deadline + SLACK_S, \
        f"no failure counted {deadline + SLACK_S:g} s after the first cell: {counts()}"
    before = counts()["failed"]
    _, out = run(fwd, "%%trace --quiet\nx = 1")
    outs.append(out)
    after = counts()["failed"]
    assert all(len(told(o)) <= 1 for o in outs)  # at most one warning a cell
    # every failed span told once, on the first cell that ended after it was counted
    assert before <= sum(sum(told(o)) for o in outs) <= after, [o.stderr for o in outs]
    stderr = "".join(o.stderr for o in outs)
    if protocol == "grpc":
        assert "DEADLINE_EXCEEDED" in stderr, stderr
    else:
        assert f"no complete answer within the {deadline:g} s export deadline" in stderr, stderr
    assert flush_threads() <= 1
    _, status = run(fwd, "%llmtrace status")
    assert re.search(r"\b0 sent, [1-9][\d,]* failed", status.text), status.text


@pytest.mark.parametrize("kind", ["drip status", "drip headers", "drip body", "black hole"])
def test_a_held_request_fails_at_its_deadline(fwd: InteractiveShell, kind: str) -> None:
    with stuck_endpoint(kind) as url:
        held_by(fwd, url, deadline=2.0)


def test_the_default_deadline_against_a_drip(fwd: InteractiveShell) -> None:
    """Through the magic, with the default deadline."""
    no_flush_left()
    with drip("headers") as server:
        _, out = run(fwd, f"%llmtrace forward {server.url}")
        assert "forwarding to" in out.text
        first = time.monotonic()
        for _ in range(10):
            run(fwd, "%%trace --quiet\n" + llm_cell())
        assert flush_threads() <= 1
        took = wait_for(lambda: counts()["failed"] > 0, EXPORT_TIMEOUT_S + SLACK_S)
        assert took < float("inf") and time.monotonic() - first <= EXPORT_TIMEOUT_S + SLACK_S
        _, out = run(fwd, "%%trace --quiet\nx = 1")
        assert "could not be forwarded" in out.stderr
        assert f"within the {EXPORT_TIMEOUT_S:g} s export deadline" in out.stderr


def test_grpc_has_a_deadline(fwd: InteractiveShell) -> None:
    """A gRPC collector that takes the call and never answers."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import (
        trace_service_pb2,
        trace_service_pb2_grpc,
    )

    release = threading.Event()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: object, context: object) -> object:
            release.wait(60)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        held_by(fwd, f"http://127.0.0.1:{port}", deadline=2.0, protocol="grpc")
    finally:
        release.set()
        server.stop(0)


def wait_settled(n: int, timeout: float = 10.0) -> dict[str, int]:
    wait_for(lambda: counts()["sent"] + counts()["failed"] >= n, timeout)
    return counts()


@pytest.mark.parametrize("code", ["301", "302", "307", "308"])
def test_a_redirect_is_not_sent(fwd: InteractiveShell, code: str) -> None:
    with receiver() as rx, receiver() as target:
        rx.mode = code
        rx.location = f"{target.url}/v1/traces"  # same scheme and host: still not followed
        run(fwd, f"%llmtrace forward {rx.url}")
        run(fwd, "%%trace --quiet\n" + llm_cell())
        c = wait_settled(2)
        assert (c["sent"], c["failed"]) == (0, 2), c
        _, out = run(fwd, "%%trace --quiet\nx = 1")
        assert told(out) == [2], out.stderr
        assert f"HTTP {code}" in out.stderr and rx.location in out.stderr, out.stderr
        assert rx.posts >= 1 and target.posts == 0 and target.spans == []
        _, status = run(fwd, "%llmtrace status")  # (with the last cell's span, perhaps)
        assert re.search(r"\b0 sent, [23] failed", status.text), status.text


@pytest.mark.parametrize("code", ["404", "500"])
def test_an_error_status_is_named(fwd: InteractiveShell, code: str) -> None:
    with receiver() as rx:
        rx.mode = code
        run(fwd, f"%llmtrace forward {rx.url}")
        run(fwd, "%%trace --quiet\n" + llm_cell())
        c = wait_settled(2)
        assert (c["sent"], c["failed"]) == (0, 2), c
        _, out = run(fwd, "%%trace --quiet\nx = 1")
        assert told(out) == [2] and f"HTTP {code}" in out.stderr, out.stderr


@pytest.mark.parametrize("code", ["200", "204"])
def test_a_2xx_is_sent(fwd: InteractiveShell, code: str) -> None:
    with receiver() as rx:
        rx.mode = "ok" if code == "200" else code
        run(fwd, f"%llmtrace forward {rx.url}")
        run(fwd, "%%trace --quiet\n" + llm_cell())
        c = wait_settled(2)
        assert (c["sent"], c["failed"]) == (2, 0), c
        assert len(rx.spans) == 2
        _, out = run(fwd, "%%trace --quiet\nx = 1")
        assert "could not be forwarded" not in out.stderr


def test_exit_is_not_held_by_a_drip() -> None:
    with drip("body") as server:
        _, elapsed = run_py(f"""
            import llmtrace_nb
            from llmtrace_nb import span
            llmtrace_nb.enable(forward={server.url!r})
            for i in range(50):
                with span(f"s{{i}}"):
                    pass
        """, {})
        assert server.connections >= 1  # it was held there
    assert elapsed < 10  # interpreter start + at most SHUTDOWN_WAIT_S for the last spans
