"""LangChain in a real kernel, traced by OpenInference's or OpenLLMetry's instrumentor.

``ChatOpenAI(base_url=demo)`` in an LCEL chain (prompt | model | StrOutputParser): invoked,
streamed, run as a batch of four (LangChain runs a batch in threads), and invoked next to
the same request made with the OpenAI client directly (two calls alike in model and
tokens). And a tool loop: ``bind_tools([get_weather])``, the model asks for the tool, the
tool runs on the model's call (so LangChain answers with a ``ToolMessage``), and the
conversation goes back to the model.

``stream_usage=True``: with a base URL that is not OpenAI's, langchain-openai does not ask a
streamed completion for its usage (``stream_options.include_usage``); LangChain's docs say
to pass it. Without usage on the wire no tracer can count a streamed call's tokens.

With OpenInference the OpenAI client's own span (llmtrace_nb's instrumentation) sits beside
LangChain's ``ChatOpenAI`` span of the same call (OpenInference's spans never become the
current span). OpenLLMetry's LangChain instrumentation suppresses the OpenAI
instrumentation under its own spans, so there each call is its ``ChatOpenAI.chat`` span
alone.
"""

from __future__ import annotations

import json
import re

import pytest

from llmtrace_nb.demo import DemoServer

from .checks import LOAD_ORDERS, Checks, Notebook, check_calls, check_kind, tool_calls_of
from .kernel import Kernel

INSTRUMENTORS = {
    "openinference": """\
from openinference.instrumentation.langchain import LangChainInstrumentor
LangChainInstrumentor().instrument()
""",
    "openllmetry": """\
from opentelemetry.instrumentation.langchain import LangchainInstrumentor
LangchainInstrumentor().instrument()
""",
}
SET_UP = """\
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from openai import OpenAI

llm = ChatOpenAI(model="gpt-4o-mini", base_url="$BASE_URL", api_key="x", stream_usage=True)
client = OpenAI(base_url="$BASE_URL", api_key="x")
prompt = ChatPromptTemplate.from_messages(
    [("system", "You are a terse assistant."), ("user", "Tell me about {topic}")])
chain = prompt | llm | StrOutputParser()

@tool
def get_weather(city: str) -> str:
    \"\"\"The current weather in a city.\"\"\"
    return f"Sunny in {city}"

llm_with_tools = llm.bind_tools([get_weather])
"""
INVOKE = 'print(chain.invoke({"topic": "otters"}))'
STREAM = 'print("".join(chain.stream({"topic": "otters"})))'
#: four identical chain runs at once (LangChain runs a batch in threads)
BATCH = 'print(chain.batch([{"topic": "otters"}] * 4))'
#: the chain and the same request made with the client directly, one after the other
SIDE_BY_SIDE = """\
print(chain.invoke({"topic": "otters"}))
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Tell me about otters"}])
print(reply.choices[0].message.content)
"""
TOOLS = """\
messages = [HumanMessage("What is the weather in Paris?")]
ai = llm_with_tools.invoke(messages)
messages.append(ai)
for call in ai.tool_calls:
    print("tool call:", call["id"])
    messages.append(get_weather.invoke(call))
final = llm_with_tools.invoke(messages)
print(final.content)
"""
#: the spans each instrumentor makes: (cell, name, kind, how many)
SPANS = {
    "openinference": [
        ("invoke", "RunnableSequence", "chain", 1),
        ("invoke", "ChatPromptTemplate", "chain", 1),
        ("invoke", "StrOutputParser", "chain", 1),
        ("invoke", "ChatOpenAI", "llm", 1),
        ("invoke", "openai.chat", "llm", 1),
        ("stream", "RunnableSequence", "chain", 1),
        ("stream", "ChatOpenAI", "llm", 1),
        ("stream", "openai.chat", "llm", 1),
        ("batch", "ChatOpenAI", "llm", 4),
        ("batch", "openai.chat", "llm", 4),
        ("side-by-side", "ChatOpenAI", "llm", 1),
        ("side-by-side", "openai.chat", "llm", 2),
        ("tools", "ChatOpenAI", "llm", 2),
        ("tools", "openai.chat", "llm", 2),
        ("tools", "get_weather", "tool", 1),
    ],
    # OpenLLMetry's LangChain instrumentation tells the OpenAI instrumentation to skip the
    # client's span; llmtrace_nb lets it be made (_compat.unsuppress_openai), so every
    # ChatOpenAI.chat has its openai.chat, a duplicate of the same call
    "openllmetry": [
        ("invoke", "RunnableSequence.workflow", "chain", 1),
        ("invoke", "execute_task ChatPromptTemplate", "chain", 1),
        ("invoke", "execute_task StrOutputParser", "chain", 1),
        ("invoke", "ChatOpenAI.chat", "llm", 1),
        ("invoke", "openai.chat", "llm", 1),
        ("stream", "RunnableSequence.workflow", "chain", 1),
        ("stream", "ChatOpenAI.chat", "llm", 1),
        ("stream", "openai.chat", "llm", 1),
        ("batch", "ChatOpenAI.chat", "llm", 4),
        ("batch", "openai.chat", "llm", 4),
        ("side-by-side", "ChatOpenAI.chat", "llm", 1),
        ("side-by-side", "openai.chat", "llm", 2),
        ("tools", "ChatOpenAI.chat", "llm", 2),
        ("tools", "openai.chat", "llm", 2),
        ("tools", "execute_tool get_weather", "tool", 1),
    ],
}
TOOL_SPAN = {"openinference": "get_weather", "openllmetry": "execute_tool get_weather"}


@pytest.mark.parametrize("order", LOAD_ORDERS)
@pytest.mark.parametrize("instrumentor", list(INSTRUMENTORS))
def test_langchain(instrumentor: str, order: str, kernel: Kernel, server: DemoServer) -> None:
    nb = Notebook(kernel, server)
    nb.set_up(order, INSTRUMENTORS[instrumentor], SET_UP)
    nb.traced("invoke", INVOKE)
    nb.traced("stream", STREAM)
    nb.traced("batch", BATCH)
    nb.traced("side-by-side", SIDE_BY_SIDE)
    out = nb.traced("tools", TOOLS)
    report = nb.report()
    checks = Checks(f"LangChain with {instrumentor}, {order}")
    checks.equal("[tools] requests the demo server answered", len(nb.answered["tools"]), 2)
    checks.equal("[batch] requests the demo server answered", len(nb.answered["batch"]), 4)
    # the same request twice: the usage of the two calls is alike
    side = nb.answered["side-by-side"]
    checks.equal("[side-by-side] requests the demo server answered (two, alike)",
                 (len(side), len({json.dumps(c, sort_keys=True) for c in side})), (2, 1))
    for cell, name, kind, count in SPANS[instrumentor]:
        check_kind(checks, report, cell, name, kind, count)
    call_ids = re.findall(r"tool call: (\S+)", out)
    checks.equal("[tools] the model asked for one tool call", len(call_ids), 1)
    # the tool's row: the call it ran, with the model's call id and its arguments as a dict
    checks.equal("[tools] the tool row's call (input_messages tool_calls)",
                 tool_calls_of(report, "tools", TOOL_SPAN[instrumentor]),
                 [{"id": call_ids[0] if call_ids else None, "name": "get_weather",
                   "arguments": {"city": "Paris"}}])
    check_calls(report, nb.answered, checks)
    checks.done()
