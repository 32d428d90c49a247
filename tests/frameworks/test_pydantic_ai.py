"""pydantic-ai in a real kernel: an agent with a function tool on an OpenAI chat model.

Two routes to its spans, each in both load orders: ``Agent.instrument_all()`` (the global
OpenTelemetry provider), and logfire's ``logfire.configure(send_to_logfire=False,
console=False)`` + ``logfire.instrument_pydantic_ai()`` (logfire's provider). The OpenAI
client under the agent is traced by llmtrace_nb's own instrumentation as well, so each
model request is two spans: pydantic-ai's ``chat gpt-4o-mini`` and ``openai.chat``.

The runs are ``await agent.run(...)``, ``agent.run_stream(...)`` and three runs at once
(``asyncio.gather``: calls alike in every respect but their spans' ancestry): in a Jupyter kernel
the cell already runs in an event loop, where ``agent.run_sync()`` raises "This event loop
is already running" (pydantic-ai's docs send notebook users to ``await agent.run()``).
"""

from __future__ import annotations

import pytest

from llmtrace_nb.demo import DemoServer

from .checks import LOAD_ORDERS, Checks, Notebook, check_calls, check_kind
from .kernel import Kernel

AGENT = """\
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

model = OpenAIChatModel("gpt-4o-mini",
                        provider=OpenAIProvider(base_url="$BASE_URL", api_key="x"))
agent = Agent(model, name="weather_agent", instructions="Answer in one sentence.")

@agent.tool_plain
def get_weather(city: str) -> str:
    \"\"\"The current weather in a city.\"\"\"
    return f"Sunny in {city}"
"""
INSTRUMENT_ALL = "from pydantic_ai import Agent\nAgent.instrument_all()"
LOGFIRE = """\
import logfire
logfire.configure(send_to_logfire=False, console=False)
logfire.instrument_pydantic_ai()
"""
RUN = """\
result = await agent.run("What is the weather in Paris?")
print(result.output)
"""
#: three identical runs at once: six calls alike in model, tokens and time
PARALLEL = """\
import asyncio
results = await asyncio.gather(*(agent.run("What is the weather in Paris?") for _ in range(3)))
print([r.output for r in results])
"""
STREAM = """\
async with agent.run_stream("What is the weather in Paris?") as run:
    text = "".join([piece async for piece in run.stream_text(delta=True)])
print(text)
"""


def _run(kernel: Kernel, server: DemoServer, order: str, route: str, *set_up: str) -> None:
    nb = Notebook(kernel, server)
    nb.set_up(order, *set_up)
    nb.traced("agent-run", RUN)
    nb.traced("agent-stream", STREAM)
    nb.traced("agent-parallel", PARALLEL)
    report = nb.report()
    checks = Checks(f"pydantic-ai via {route}, {order}")
    for cell in ("agent-run", "agent-stream"):
        # the model asks for the tool, then answers with its result: two requests
        checks.equal(f"[{cell}] requests the demo server answered", len(nb.answered[cell]), 2)
        check_kind(checks, report, cell, "invoke_agent weather_agent", "agent", 1)
        check_kind(checks, report, cell, "execute_tool get_weather", "tool", 1)
        check_kind(checks, report, cell, "chat gpt-4o-mini", "llm", 2)
        check_kind(checks, report, cell, "openai.chat", "llm", 2)
    checks.equal("[agent-parallel] requests the demo server answered",
                 len(nb.answered["agent-parallel"]), 6)
    check_kind(checks, report, "agent-parallel", "invoke_agent weather_agent", "agent", 3)
    check_calls(report, nb.answered, checks)
    checks.done()


@pytest.mark.parametrize("order", LOAD_ORDERS)
def test_instrument_all(order: str, kernel: Kernel, server: DemoServer) -> None:
    _run(kernel, server, order, "Agent.instrument_all()", INSTRUMENT_ALL, AGENT)


@pytest.mark.parametrize("order", LOAD_ORDERS)
def test_logfire_instrument_pydantic_ai(order: str, kernel: Kernel, server: DemoServer) -> None:
    _run(kernel, server, order, "logfire.instrument_pydantic_ai()", LOGFIRE, AGENT)
