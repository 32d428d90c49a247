"""Fixtures of the framework tests: the demo server (owned by the test process, so its
answered log is read directly) and a fresh kernel per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmtrace_nb.demo import DemoServer

from .kernel import Kernel


@pytest.fixture(scope="session")
def framework_server() -> Iterator[DemoServer]:
    with DemoServer() as server:
        yield server


@pytest.fixture
def server(framework_server: DemoServer) -> Iterator[DemoServer]:
    """The session's demo server with an empty answered log and default behaviour."""
    framework_server.clear_failures()
    framework_server.set_latency(0)
    framework_server.clear_answered()
    yield framework_server
    framework_server.clear_failures()
    framework_server.set_latency(0)


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    """A fresh ipykernel, shut down after the test whatever happens."""
    with Kernel() as k:
        yield k
