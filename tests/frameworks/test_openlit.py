"""openlit, from spans recorded in real runs (tests/fixtures/openlit, scripts/record_openlit.py).

openlit pins ``openai<3``, so it cannot run in this environment: its spans were recorded
in a virtualenv of its own, with llmtrace_nb loaded after openlit (openlit owns the
provider and wrapped the client first) and before it, and saved as OTLP JSON lines with a
sidecar of what the demo server answered. Each file is loaded with ``llmtrace_nb.load`` in
a fresh kernel and must give the same invariants as a live run: one counted row per HTTP
call, the dated model, tokens and a cost priced from the recorded usage — openlit records
``gen_ai.usage.cost = 0`` offline, which is no price and must not become the cost — and a
time to first token only on the streamed call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .checks import Checks, check_calls, check_kind
from .kernel import Kernel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openlit"
#: the traced cell of the recording (``%%trace openlit calls`` in scripts/record_openlit.py)
CELL = "openlit calls"


def _answered(call: dict[str, Any]) -> dict[str, Any]:
    """A sidecar call as ``DemoServer.answered`` records it."""
    return {"endpoint": "chat" if call["operation"] == "chat" else "embeddings",
            "model": call["model"], "stream": call["streamed"],
            "input_tokens": call["input_tokens"], "output_tokens": call["output_tokens"] or 0,
            "cache_read_tokens": call["cached_tokens"], "cache_write_tokens": 0,
            "reasoning_tokens": 0}


@pytest.mark.parametrize("scenario", ["after_load_ext", "before_load_ext"])
def test_openlit_recorded_spans(scenario: str, kernel: Kernel) -> None:
    expected = json.loads((FIXTURES / f"{scenario}.expected.json").read_text())
    printed = kernel.run(f"import llmtrace_nb\n"
                         f"print(llmtrace_nb.load({str(FIXTURES / f'{scenario}.jsonl')!r}))")
    report = kernel.report()
    checks = Checks(f"openlit, recorded {scenario}")
    checks.equal("spans loaded", int(printed.strip().splitlines()[-1]), expected["spans_saved"])
    checks.equal("spans_df() holds every loaded span", len(report["spans"]),
                 expected["spans_saved"])
    calls = [_answered(c) for c in expected["calls"]]
    checks.equal("the sidecar's calls are its HTTP calls", len(calls), expected["http_calls"])
    check_kind(checks, report, CELL, "chat gpt-4o-mini", "llm", 2)
    check_kind(checks, report, CELL, "embeddings text-embedding-3-small", "embedding", 1)
    if "openai" in expected["llmtrace_nb"]["instrumented"]:
        # llmtrace_nb instrumented the client too: each call also has the client's span
        check_kind(checks, report, CELL, "openai.chat", "llm", 2)
        check_kind(checks, report, CELL, "openai.embeddings", "embedding", 1)
    check_calls(report, {CELL: calls}, checks)
    checks.done()
