"""Forwarding cases: what a dead endpoint adds to a traced cell, and throughput.

Each case runs real ``%%trace`` cells in an IPython shell, so the figure includes all
the cell-end work (the trace document, the flush that is started but not awaited).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

# The test suite's loopback peers: an OTLP receiver and endpoints that misbehave.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from otlp_receiver import black_hole, receiver, refused_url

CELL = ("%%trace --quiet\nimport llmtrace_nb\n"
        "for i in range(20):\n"
        "    with llmtrace_nb.span('openai.chat', kind='llm', **{\n"
        "        'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.usage.input_tokens': 100,\n"
        "        'gen_ai.usage.output_tokens': 20}):\n"
        "        pass")


def _shell() -> InteractiveShell:
    shell = InteractiveShell.instance()
    with capture_output():
        shell.run_line_magic("load_ext", "llmtrace_nb")
    return shell


def _cell_ms(shell: InteractiveShell, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        with capture_output():
            start = time.perf_counter()
            shell.run_cell(CELL, store_history=True)
            times.append((time.perf_counter() - start) * 1000)
    return times


def added_cell_ms(repeats: int) -> dict[str, list[float]]:
    """Per endpoint kind: each run's cell time minus the median cell time without
    forwarding, measured interleaved so machine drift hits both alike."""
    shell = _shell()
    _cell_ms(shell, 3)  # warm up imports and caches
    out: dict[str, list[float]] = {}
    for kind in ("refused", "black hole"):
        added: list[float] = []
        with black_hole() as hole:
            url = refused_url() if kind == "refused" else hole
            for _ in range(repeats):
                with capture_output():
                    shell.run_line_magic("llmtrace", "forward off")
                base = statistics.median(_cell_ms(shell, 3))
                with capture_output():
                    shell.run_line_magic("llmtrace", f"forward {url}")
                added.append(statistics.median(_cell_ms(shell, 3)) - base)
            with capture_output():
                shell.run_line_magic("llmtrace", "forward off")
        out[kind] = added
    return out


def throughput(n: int) -> float:
    """Spans per second from the end of a cell making ``n`` spans to all of them received
    by an OTLP/HTTP receiver on loopback."""
    shell = _shell()
    with receiver() as rx, capture_output():
        shell.run_line_magic("llmtrace", f"forward {rx.url}")
        start = time.perf_counter()
        shell.run_cell(f"%%trace --quiet\nimport llmtrace_nb\nfor i in range({n}):\n"
                       "    with llmtrace_nb.span(f's{i}'): pass", store_history=True)
        got = rx.wait_for(n + 1, timeout=120)
        elapsed = time.perf_counter() - start
        shell.run_line_magic("llmtrace", "forward off")
    if len(got) < n + 1:
        raise RuntimeError(f"only {len(got)} of {n + 1} spans arrived")
    return (n + 1) / elapsed

