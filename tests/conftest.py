"""Shared fixtures: one IPython shell with the extension loaded, one demo server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="session")
def demo_server() -> Iterator[object]:
    from llmtrace_nb.demo import DemoServer

    with DemoServer() as server:
        yield server


@pytest.fixture(scope="session")
def ip() -> InteractiveShell:
    shell = InteractiveShell.instance()
    with capture_output():
        shell.run_line_magic("load_ext", "llmtrace_nb")
    return shell


@pytest.fixture
def shell(ip: InteractiveShell) -> Iterator[InteractiveShell]:
    """The shell with the extension loaded, an empty collector and default options."""
    from llmtrace_nb._notebook import session

    with capture_output():
        if "llmtrace_nb" not in ip.extension_manager.loaded:
            ip.run_line_magic("load_ext", "llmtrace_nb")
        ip.run_line_magic("llmtrace", "clear")
    sess = session.require()
    sess.auto = False
    sess.set_capture_content(True)
    sess.prices.clear_overrides()
    yield ip
    sess.auto = False
    sess.set_capture_content(True)


class Output:
    """What a cell printed and displayed."""

    def __init__(self, captured: CapturedIO) -> None:
        self.stdout = captured.stdout
        self.stderr = captured.stderr
        #: the data dicts of everything displayed, in order
        self.bundles = [o.data for o in captured.outputs]
        #: stdout, then the text/plain of every displayed bundle
        self.text = self.stdout + "".join(
            b.get("text/plain", "") + "\n" for b in self.bundles)


def run(shell: InteractiveShell, source: str) -> tuple[ExecutionResult, Output]:
    """Run a cell as a notebook would (history on, so execution counts advance)."""
    with capture_output() as captured:
        result = shell.run_cell(source, store_history=True)
    return result, Output(captured)
