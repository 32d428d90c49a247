"""The anthropic SDK in a real kernel, with and without OpenLLMetry's AnthropicInstrumentor.

anthropic 2.x traces itself (``ANTHROPIC_OPEN_TELEMETRY`` is on unless set to false): one
``anthropic.messages.create`` span per call, on the global provider. With
``AnthropicInstrumentor().instrument()`` the same call is also its ``anthropic.chat`` span,
a sibling. The prompts carry the demo's ``[cached]`` / ``[cache-write]`` markers, so the
answers report cache reads (``cache_read_input_tokens``) and cache writes
(``cache_creation_input_tokens``), and the cost must price the writes at genai-prices'
cache-write rate. Streams: ``messages.create(stream=True)`` and ``messages.stream()``, the
latter also from four threads at once and on an ``AsyncAnthropic`` client.

The SDK's own span of a raw ``create(stream=True)`` never has the output text (its tracing
accumulates the content only for the ``messages.stream()`` helper), so without the
instrumentor that call has no output messages anywhere.
"""

from __future__ import annotations

import pytest

from llmtrace_nb.demo import DemoServer

from .checks import LOAD_ORDERS, Checks, Notebook, check_calls, check_kind
from .kernel import Kernel

INSTRUMENTOR = """\
from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
AnthropicInstrumentor().instrument()
"""
CLIENT = """\
import anthropic
claude = anthropic.Anthropic(base_url="$ANTHROPIC_BASE_URL", api_key="x")
"""
CELLS = {
    "plain": """\
message = claude.messages.create(
    model="claude-3-5-haiku-latest", max_tokens=200, system="You are terse. [cached]",
    messages=[{"role": "user", "content": "What is an otter?"}])
print(message.content[0].text, message.usage)
""",
    "create-stream": """\
stream = claude.messages.create(
    model="claude-sonnet-4-0", max_tokens=200, stream=True,
    messages=[{"role": "user", "content": "A long context [cache-write] about otters"}])
print("".join(e.delta.text for e in stream if e.type == "content_block_delta"))
""",
    # six identical streamed calls from four threads: siblings alike in model, tokens, time
    "parallel": """\
from concurrent.futures import ThreadPoolExecutor

def ask(_):
    with claude.messages.stream(
            model="claude-3-5-haiku-latest", max_tokens=200,
            messages=[{"role": "user", "content": "Same question [cached] for all"}]) as s:
        return s.get_final_message()

with ThreadPoolExecutor(4) as pool:
    print(len(list(pool.map(ask, range(6)))))
""",
    # an async client made in the cell, after the set-up (and so after %load_ext)
    "async-stream": """\
aclaude = anthropic.AsyncAnthropic(base_url="$ANTHROPIC_BASE_URL", api_key="x")
async with aclaude.messages.stream(
        model="claude-sonnet-4-0", max_tokens=200, system="Shared rules [cache-write]",
        messages=[{"role": "user", "content": "Tell me [cached] about seals"}]) as stream:
    text = "".join([piece async for piece in stream.text_stream])
print(text)
""",
    "helper-stream": """\
with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=200,
        messages=[{"role": "user", "content": "Context [cached] [cache-write] otters"}]) as stream:
    text = "".join(stream.text_stream)
print(text, stream.get_final_message().usage)
""",
}


@pytest.mark.parametrize("order", LOAD_ORDERS)
@pytest.mark.parametrize("instrumentor", [False, True], ids=["sdk-only", "instrumentor"])
def test_anthropic(instrumentor: bool, order: str, kernel: Kernel, server: DemoServer) -> None:
    nb = Notebook(kernel, server)
    nb.set_up(order, *([INSTRUMENTOR, CLIENT] if instrumentor else [CLIENT]))
    for cell, source in CELLS.items():
        nb.traced(cell, source)
    report = nb.report()
    checks = Checks(f"anthropic SDK{' + AnthropicInstrumentor' if instrumentor else ''}, "
                    f"{order}")
    answered = [c for calls in nb.answered.values() for c in calls]
    checks.that(all(c["endpoint"] == "messages" for c in answered)
                and any(c["cache_read_tokens"] for c in answered)
                and any(c["cache_write_tokens"] for c in answered),
                "the demo answered Messages calls with cache reads and writes", answered, None)
    for cell in CELLS:
        calls = 6 if cell == "parallel" else 1
        check_kind(checks, report, cell, "anthropic.messages.create", "llm", calls)
        if instrumentor:
            check_kind(checks, report, cell, "anthropic.chat", "llm", calls)
    # The SDK reads its content switch when a client is made: a client made before the
    # extension loaded keeps the SDK's default, no messages, and the status says so.
    before = order == LOAD_ORDERS[1] and not instrumentor
    if before:
        checks.that("Anthropic clients made before loading record no messages"
                    in report["status"], "the status says why the SDK's spans have no messages",
                    report["status"], None)
    check_calls(report, nb.answered, checks,
                without_output_messages=() if instrumentor else ("create-stream",),
                without_messages=before)
    checks.done()
