"""openai-agents in a real kernel, traced by OpenInference's ``OpenAIAgentsInstrumentor``.

An agent with a function tool on the Chat Completions model and one on the Responses model,
each run plainly and streamed, and three chat runs at once. ``instrument()`` is exclusive
by default: it replaces the SDK's own trace processor, which would export to
api.openai.com (the kernel's network guard would record that). The client under the agents
(``AsyncOpenAI(base_url=demo)``) is traced by llmtrace_nb's OpenAI instrumentation too, so
a model request is OpenInference's ``generation`` / ``response`` span and ``openai.chat`` /
``openai.response``.

Runs are ``await Runner.run(...)`` and ``Runner.run_streamed(...)``: in a kernel the cell
runs in an event loop already, and ``Runner.run_sync()`` raises "AgentRunner.run_sync()
cannot be called when an event loop is already running". The chat model gets
``ModelSettings(include_usage=True)``: the SDK asks a streamed chat completion for usage
only when the client's base URL is OpenAI's, as the SDK documents for other endpoints.
Streamed Responses runs go through ``client.responses.with_streaming_response``.
"""

from __future__ import annotations

import pytest

from llmtrace_nb.demo import DemoServer

from .checks import LOAD_ORDERS, Checks, Notebook, check_calls, check_kind
from .kernel import Kernel

SET_UP = """\
from openai import AsyncOpenAI
from agents import (Agent, ModelSettings, OpenAIChatCompletionsModel, OpenAIResponsesModel,
                    Runner, function_tool)
from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

OpenAIAgentsInstrumentor().instrument()
client = AsyncOpenAI(base_url="$BASE_URL", api_key="x")

@function_tool
def get_weather(city: str) -> str:
    \"\"\"The current weather in a city.\"\"\"
    return f"Sunny in {city}"

chat_agent = Agent(
    name="chat_agent", instructions="Answer in one sentence.", tools=[get_weather],
    model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client),
    model_settings=ModelSettings(include_usage=True),
)
responses_agent = Agent(
    name="responses_agent", instructions="Answer in one sentence.", tools=[get_weather],
    model=OpenAIResponsesModel(model="gpt-4o-mini", openai_client=client),
)
"""
RUN = """\
result = await Runner.run({agent}, "What is the weather in Paris?")
print(result.final_output)
"""
STREAMED = """\
result = Runner.run_streamed({agent}, "What is the weather in Paris?")
async for event in result.stream_events():
    pass
print(result.final_output)
"""
#: three identical runs at once on the chat model: six calls alike but for their ancestry
PARALLEL = """\
import asyncio
results = await asyncio.gather(
    *(Runner.run(chat_agent, "What is the weather in Paris?") for _ in range(3)))
print([r.final_output for r in results])
"""
CELLS = {
    "chat-run": ("chat_agent", RUN, "generation", "openai.chat"),
    "chat-streamed": ("chat_agent", STREAMED, "generation", "openai.chat"),
    "responses-run": ("responses_agent", RUN, "response", "openai.response"),
    "responses-streamed": ("responses_agent", STREAMED, "response", "openai.response"),
}


@pytest.mark.parametrize("order", LOAD_ORDERS)
def test_openai_agents_openinference(order: str, kernel: Kernel, server: DemoServer) -> None:
    nb = Notebook(kernel, server)
    nb.set_up(order, SET_UP)
    for cell, (agent, source, _, _) in CELLS.items():
        nb.traced(cell, source.format(agent=agent))
    nb.traced("chat-parallel", PARALLEL)
    report = nb.report()
    checks = Checks(f"openai-agents with OpenInference, {order}")
    for cell, (agent, _, model_span, client_span) in CELLS.items():
        endpoint = "chat" if cell.startswith("chat") else "responses"
        checks.equal(f"[{cell}] requests the demo server answered",
                     [c["endpoint"] for c in nb.answered[cell]], [endpoint, endpoint])
        check_kind(checks, report, cell, agent, "agent", 1)
        check_kind(checks, report, cell, "get_weather", "tool", 1)
        check_kind(checks, report, cell, model_span, "llm", 2)
        # the client's own span of each request, kept beside OpenInference's
        check_kind(checks, report, cell, client_span, "llm", 2)
    checks.equal("[chat-parallel] requests the demo server answered",
                 len(nb.answered["chat-parallel"]), 6)
    check_kind(checks, report, "chat-parallel", "chat_agent", "agent", 3)
    check_calls(report, nb.answered, checks)
    checks.done()
