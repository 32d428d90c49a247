"""Provider wiring, each case in a fresh interpreter (the global provider is set once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import json
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
import openai
from llmtrace_nb.demo import DemoServer
server = DemoServer().start()
client = openai.OpenAI(base_url=server.base_url, api_key="sk-demo", max_retries=0)
ip = InteractiveShell.instance()
ip.user_ns["client"] = client
def cell(src):
    with capture_output() as out:
        r = ip.run_cell(src, store_history=True)
    assert r.success, (r.error_in_exec, out.stdout)
    return out.stdout
CALL = ("client.chat.completions.create(model='gpt-4o-mini', "
        "messages=[{'role': 'user', 'content': 'hi'}])")
"""


def run_py(body: str, env: dict[str, str] | None = None) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=full_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_user_provider_and_exporter_keep_working() -> None:
    out = run_py("""
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        mine = TracerProvider(resource=Resource.create({"service.name": "mine"}))
        mine.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(mine)
        with capture_output():
            ip.run_line_magic("load_ext", "llmtrace_nb")
        cell("%%trace\\n" + CALL)
        import llmtrace_nb
        same = trace.get_tracer_provider() is mine
        exported = sorted(s.name for s in exporter.get_finished_spans())
        collected = sorted(llmtrace_nb.spans_df()["name"])
        with capture_output():
            ip.run_line_magic("unload_ext", "llmtrace_nb")
        with trace.get_tracer("user").start_as_current_span("after-unload"):
            pass
        print(json.dumps({"same": same, "exported": exported, "collected": collected,
                          "after": [s.name for s in exporter.get_finished_spans()][-1],
                          "n_after": len(llmtrace_nb.spans_df())}))
    """)
    assert out["same"] is True
    assert out["exported"] == out["collected"] == sorted(["cell [1]", "openai.chat"])
    assert out["after"] == "after-unload" and out["n_after"] == 2


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "llmtrace-notebook"),
    ({"OTEL_SERVICE_NAME": "my-notebook"}, "my-notebook"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,team=ml"}, "from-attrs"),
])
def test_own_provider_service_name(env: dict[str, str], expected: str) -> None:
    out = run_py("""
        from opentelemetry import trace
        import llmtrace_nb
        llmtrace_nb.enable()
        provider = trace.get_tracer_provider()
        print(json.dumps({"service": provider.resource.attributes.get("service.name"),
                          "type": type(provider).__name__}))
    """, env)
    assert out == {"service": expected, "type": "TracerProvider"}


def test_openai_already_instrumented_is_not_instrumented_twice() -> None:
    out = run_py("""
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        OpenAIInstrumentor().instrument()
        import llmtrace_nb
        from llmtrace_nb._notebook import session
        with capture_output():
            ip.run_line_magic("load_ext", "llmtrace_nb")
        cell("%%trace --quiet\\n" + CALL)
        print(json.dumps({"llm": int((llmtrace_nb.spans_df()["kind"] == "llm").sum()),
                          "ours": [i.name for i in session.require().instrumented],
                          "found": session.require().found}))
    """)
    assert out["llm"] == 1
    assert "openai" not in out["ours"] and "openai" in out["found"]


def test_someone_elses_openai_configuration_stands() -> None:
    # OpenAIInstrumentor's __init__ writes every argument into the package's global
    # Config: loading must not build it again with the defaults.
    out = run_py("""
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.instrumentation.openai.shared.config import Config
        def uploader(*args):
            return "uploaded"
        OpenAIInstrumentor(upload_base64_image=uploader, enrich_assistant=True).instrument()
        import llmtrace_nb
        with capture_output():
            ip.run_line_magic("load_ext", "llmtrace_nb")
        kept = [Config.upload_base64_image is uploader, Config.enrich_assistant]
        sent_theirs = Config.enable_trace_context_propagation
        status = llmtrace_nb.status()
        with capture_output() as switched:
            ip.run_line_magic("llmtrace", "traceparent off")
        print(json.dumps({"kept": kept, "sent": sent_theirs, "status": status,
                          "switched": switched.stdout,
                          "after": Config.enable_trace_context_propagation}))
    """)
    assert out["kept"] == [True, True]
    # theirs sends trace context (the instrumentation's default) until asked otherwise
    assert out["sent"] is True and "traceparent: on" in out["status"]
    assert "traceparent: off" in out["switched"] and out["after"] is False


def test_content_switch_from_environment() -> None:
    out = run_py("""
        import llmtrace_nb
        with capture_output() as cap:
            ip.run_line_magic("load_ext", "llmtrace_nb")
        cell("%%trace --quiet\\n" + CALL)
        row = llmtrace_nb.llm_calls_df().iloc[0]
        print(json.dumps({"line": cap.stdout, "messages": row["input_messages"],
                          "tokens": int(row["input_tokens"])}))
    """, {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"})
    assert "content not captured" in out["line"]
    assert out["messages"] is None and out["tokens"] > 0


LOGFIRE = """
import logfire
logfire.configure(send_to_logfire=False, console=False, inspect_arguments=False)
logfire.instrument_openai()
"""
COLLECTED = """
import llmtrace_nb
df = llmtrace_nb.spans_df()
print(json.dumps({"names": sorted(df["name"]), "calls": len(llmtrace_nb.llm_calls_df()),
                  "status": llmtrace_nb.status(), "loaded": loaded}))
"""


@pytest.mark.parametrize("order", ["logfire first", "extension first"])
def test_spans_of_a_library_with_a_provider_of_its_own_are_collected(order: str) -> None:
    """logfire installs its own provider behind a proxy; set first, it is the global one
    (and the SDK provider is found behind its proxy); set after, it keeps a private one,
    found at the next cell."""
    load = """
with capture_output() as out:
    ip.run_line_magic("load_ext", "llmtrace_nb")
loaded = out.stdout
"""
    body = (LOGFIRE + load) if order == "logfire first" else (load + "cell(" + repr(
        LOGFIRE) + ")\n")
    out = run_py(body + "cell('%%trace\\n' + CALL)\n" + COLLECTED)
    assert any(n.startswith("Chat Completion with") for n in out["names"]), out["names"]
    assert "openai.chat" in out["names"]
    assert out["calls"] == 1  # logfire's span and the instrumentation's: one call
    label = "logfire's" if order == "logfire first" else "ours, logfire"
    assert f"providers collected: {label}" in out["status"]
    assert "logfire" in out["status"].split("instrumentations:")[1].splitlines()[0]


def test_a_provider_set_after_loading_is_collected_at_the_next_cell() -> None:
    """A library that sets the global provider after the extension loaded would be
    refused (the global provider is set once); one that hands its own provider to its
    users is still collected when it is the global one at a cell's start."""
    out = run_py("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        import llmtrace_nb._notebook.session as session
        with capture_output():
            ip.run_line_magic("load_ext", "llmtrace_nb")
        other = TracerProvider()
        # as a library does that swaps the global provider under a proxy of its own
        trace._TRACER_PROVIDER = other
        cell("%%trace\\nfrom opentelemetry import trace\\n"
             "with trace.get_tracer('lib').start_as_current_span('library-step'): pass")
        import llmtrace_nb
        print(json.dumps({"names": sorted(llmtrace_nb.spans_df()["name"]),
                          "providers": session.current().describe_providers()}))
    """)
    assert "library-step" in out["names"]
    assert out["providers"] == "ours, global"
