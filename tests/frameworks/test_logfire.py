"""logfire's OpenAI instrumentation in a real kernel, with plain openai calls.

``logfire.configure(send_to_logfire=False, console=False)`` + ``logfire.instrument_openai()``.
logfire keeps a tracer provider of its own (set as the global one when it comes first), and
wraps the client's request method, so llmtrace_nb's OpenAI instrumentation traces the same
calls: a call is logfire's ``Chat Completion with …`` span (and, for a stream, its
``streaming response from …`` log span, where logfire puts the usage) plus
``openai.chat``.
"""

from __future__ import annotations

import pytest

from llmtrace_nb.demo import DemoServer

from .checks import LOAD_ORDERS, Checks, Notebook, check_calls, check_kind
from .kernel import Kernel

SET_UP = """\
import logfire
from openai import OpenAI

logfire.configure(send_to_logfire=False, console=False)
logfire.instrument_openai()
client = OpenAI(base_url="$BASE_URL", api_key="x")
"""
CELLS = {
    "chat": """\
reply = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Hello, a shared preamble [cached]"}])
print(reply.choices[0].message.content)
""",
    "chat-streamed": """\
stream = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello there"}],
    stream=True, stream_options={"include_usage": True})
print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
""",
    "responses": """\
print(client.responses.create(model="gpt-4o", input="Hello there").output_text)
with client.responses.stream(model="gpt-4o", input="Hello again") as stream:
    print(stream.get_final_response().output_text)
""",
    "embeddings": """\
vectors = client.embeddings.create(model="text-embedding-3-small", input="Hello there")
print(len(vectors.data))
""",
}


@pytest.mark.parametrize("order", LOAD_ORDERS)
def test_logfire_instrument_openai(order: str, kernel: Kernel, server: DemoServer) -> None:
    nb = Notebook(kernel, server)
    nb.set_up(order, SET_UP)
    for cell, source in CELLS.items():
        nb.traced(cell, source)
    report = nb.report()
    checks = Checks(f"logfire.instrument_openai(), {order}")
    checks.equal("[responses] requests the demo server answered (plain, then streamed)",
                 [c["stream"] for c in nb.answered["responses"]], [False, True])
    check_kind(checks, report, "chat", "Chat Completion with {request_data[model]!r}", "llm", 1)
    check_kind(checks, report, "chat", "openai.chat", "llm", 1)
    check_kind(checks, report, "chat-streamed", "openai.chat", "llm", 1)
    check_kind(checks, report, "responses", "openai.response", "llm", 2)
    check_kind(checks, report, "embeddings", "openai.embeddings", "embedding", 1)
    check_calls(report, nb.answered, checks)
    checks.done()
