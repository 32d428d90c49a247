"""Traceloop's SDK (OpenLLMetry) in a real kernel: ``@workflow`` / ``@task`` around OpenAI.

``Traceloop.init(app_name=..., disable_batch=True, exporter=InMemorySpanExporter())``:
no Traceloop API key, so nothing is sent anywhere, and ``TRACELOOP_TELEMETRY=false`` in
the kernel's environment. Traceloop turns on the OpenLLMetry OpenAI instrumentation, the
same llmtrace_nb uses, so each call is one ``openai.chat`` span whichever comes first;
the workflow and its tasks are chains.
"""

from __future__ import annotations

import json

import pytest

from llmtrace_nb.demo import DemoServer

from .checks import LOAD_ORDERS, Checks, Notebook, check_calls, check_kind
from .kernel import Kernel

SET_UP = """\
from openai import OpenAI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from traceloop.sdk import Traceloop
from traceloop.sdk.decorators import task, workflow

exporter = InMemorySpanExporter()
Traceloop.init(app_name="weather-app", disable_batch=True, exporter=exporter)
client = OpenAI(base_url="$BASE_URL", api_key="x")

@task(name="ask")
def ask(question: str) -> str:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content

@task(name="ask_streamed")
def ask_streamed(question: str) -> str:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}],
        stream=True, stream_options={"include_usage": True})
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

@workflow(name="weather_report")
def weather_report(city: str) -> str:
    today = ask(f"What is the weather in {city}?")
    tomorrow = ask_streamed(f"And tomorrow in {city}?")
    return f"{today} / {tomorrow}"
"""
WORKFLOW = 'print(weather_report("Paris"))'
CACHED = """\
reply = client.chat.completions.create(
    model="gpt-4o",
    messages=[{"role": "user", "content": "A long preamble [cached] and a question"}])
print(reply.usage)
"""


@pytest.mark.parametrize("order", LOAD_ORDERS)
def test_traceloop_workflow_and_tasks(order: str, kernel: Kernel, server: DemoServer) -> None:
    nb = Notebook(kernel, server)
    nb.set_up(order, SET_UP)
    nb.traced("workflow", WORKFLOW)
    nb.traced("cached", CACHED)
    report = nb.report()
    printed = kernel.run("import json\nprint(json.dumps(sorted(format(s.context.span_id, '016x')"
                         " for s in exporter.get_finished_spans())))", store_history=False)
    traceloop_ids = json.loads(printed.strip().splitlines()[-1])
    checks = Checks(f"Traceloop SDK, {order}")
    checks.equal("[workflow] requests the demo server answered (one plain, one streamed)",
                 [c["stream"] for c in nb.answered["workflow"]], [False, True])
    check_kind(checks, report, "workflow", "weather_report.workflow", "chain", 1)
    check_kind(checks, report, "workflow", "ask.task", "chain", 1)
    check_kind(checks, report, "workflow", "ask_streamed.task", "chain", 1)
    check_kind(checks, report, "workflow", "openai.chat", "llm", 2)
    check_kind(checks, report, "cached", "openai.chat", "llm", 1)
    ids = {s["span_id"] for s in report["spans"]}
    checks.equal("[all] spans_df() holds every span Traceloop's exporter got",
                 [i for i in traceloop_ids if i not in ids], [])
    check_calls(report, nb.answered, checks)
    checks.done()
