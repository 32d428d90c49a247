"""Other OpenAI instrumentations, live against the demo server, each in a fresh process.

When OpenAI is already instrumented (OpenInference, the contrib openai-v2), loading
llmtrace_nb must not add a second instrumentation: one call stays one span, and that
span is normalized like ours.
"""

from __future__ import annotations

import pytest

from test_provider import run_py

CALLS = """
import llmtrace_nb
from llmtrace_nb._notebook import session
with capture_output() as loaded:
    ip.run_line_magic("load_ext", "llmtrace_nb")
cell("%%trace --quiet\\n"
     "client.chat.completions.create(model='gpt-4o-mini', messages=[\\n"
     "    {'role': 'user', 'content': 'Hello [cached] there'}])\\n"
     "s = client.chat.completions.create(model='gpt-4o', stream=True,\\n"
     "    stream_options={'include_usage': True},\\n"
     "    messages=[{'role': 'user', 'content': 'Stream it'}])\\n"
     "for _ in s: pass\\n"
     "client.embeddings.create(model='text-embedding-3-small', input='hello world')\\n"
     "import llmtrace_nb\\n"
     "with llmtrace_nb.span('lookup', kind='tool'): pass")
df = llmtrace_nb.spans_df()
rows = df[df["kind"] != "cell"].drop(columns=["start_time", "end_time", "attributes"])
print(json.dumps({"loaded": loaded.stdout, "status": llmtrace_nb.status(),
                  "rows": rows.astype(object).where(rows.notna(), None).to_dict("records")},
                 default=str))
"""

INSTRUMENT = {
    "openinference": "from openinference.instrumentation.openai import OpenAIInstrumentor\n"
                     "OpenAIInstrumentor().instrument()\n",
    "contrib": "from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor\n"
               "OpenAIInstrumentor().instrument()\n",
}


@pytest.mark.parametrize("which", ["openinference", "contrib"])
def test_existing_openai_instrumentation_is_reused(which: str) -> None:
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
           "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"}
    out = run_py(INSTRUMENT[which] + CALLS, env if which == "contrib" else None)
    rows = out["rows"]
    kinds = sorted(r["kind"] for r in rows)
    assert kinds == ["embedding", "llm", "llm", "tool"]  # one span per call, not two
    label = "openinference-openai" if which == "openinference" else "openai_v2"
    assert f"instrumented: threading (already on: {label})" in out["loaded"]
    assert label in out["status"]
    llm = [r for r in rows if r["kind"] == "llm"]
    assert {r["model"] for r in llm} == {"gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"}
    for r in llm + [r for r in rows if r["kind"] == "embedding"]:
        assert r["input_tokens"] > 0 and r["cost_usd"] > 0 and r["provider"] == "openai"
    plain = next(r for r in llm if r["model"].startswith("gpt-4o-mini"))
    assert plain["cache_read_tokens"] == (plain["input_tokens"] // 2 if which == "openinference"
                                          else None)
    assert plain["input_messages"] == [{"role": "user", "content": "Hello [cached] there"}]
    assert plain["output_messages"][0]["content"] == "Demo reply to: Hello [cached] there"
    streamed = next(r for r in llm if r["model"].startswith("gpt-4o-2"))
    if which == "openinference":  # it marks the first token with an event
        assert streamed["is_streaming"] and streamed["ttft_ms"] > 0


# -- the OpenAI instrumentation does no work nobody reads -------------------------------

METRICS = """
import llmtrace_nb
import opentelemetry.instrumentation.openai.shared.chat_wrappers as chat
import opentelemetry.instrumentation.openai.utils as utils
from packaging import version as pkg_version
parsed = []
real_parse = pkg_version.parse
pkg_version.parse = lambda v: parsed.append(v) or real_parse(v)
real_shared = chat.metric_shared_attributes
def counted_shared(*a, **kw):
    counted_shared.calls += 1
    return real_shared(*a, **kw)
counted_shared.calls = 0
chat.metric_shared_attributes = counted_shared
%(before)s
with capture_output():
    ip.run_line_magic("load_ext", "llmtrace_nb")
parsed.clear()  # (instrumenting checks the version once: fine)
cell("%%%%trace --quiet\\n"
     "client.chat.completions.create(model='gpt-4o-mini', messages=[\\n"
     "    {'role': 'user', 'content': 'Hello'}])\\n"
     "import opentelemetry.instrumentation.openai.shared.chat_wrappers as chat\\n"
     "shared_plain = chat.metric_shared_attributes.calls\\n"
     "s = client.chat.completions.create(model='gpt-4o', stream=True,\\n"
     "    stream_options={'include_usage': True},\\n"
     "    messages=[{'role': 'user', 'content': 'Stream it'}])\\n"
     "for _ in s: pass\\n"
     "shared_stream = chat.metric_shared_attributes.calls - shared_plain\\n")
df = llmtrace_nb.llm_calls_df()
metrics = %(read)s
parsed_in_cell = len(parsed)
with capture_output():
    ip.run_line_magic("unload_ext", "llmtrace_nb")
print(json.dumps({
    "parsed": parsed_in_cell, "metrics": metrics,
    "shared_plain": ip.user_ns["shared_plain"],
    "shared_stream": ip.user_ns["shared_stream"],
    "checks_back": chat.is_openai_v1 is utils.is_openai_v1,
    "rows": df[["model", "input_tokens", "output_tokens", "is_streaming", "ttft_ms"]]
        .astype(object).to_dict("records")}, default=str))
"""

SDK_METERS = """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
"""
READ_METRICS = ("sorted({m.name for rm in reader.get_metrics_data().resource_metrics "
                "for sm in rm.scope_metrics for m in sm.metrics})")


def _calls_are_whole(rows: list[dict]) -> None:
    plain, streamed = rows
    assert plain["input_tokens"] > 0 and plain["output_tokens"] > 0
    assert streamed["is_streaming"] is True and float(streamed["ttft_ms"]) > 0
    assert streamed["input_tokens"] > 0 and streamed["output_tokens"] > 0


def test_version_checks_are_answered_once_and_metrics_skipped_when_unread() -> None:
    """opentelemetry-instrumentation-openai parses version strings on every call and
    builds six metrics, and for a plain call their attributes, no one reads when no
    MeterProvider is set: none of it happens, and nothing on the spans is lost (tokens,
    streaming, TTFT)."""
    out = run_py(METRICS % {"before": "", "read": "None"})
    assert out["parsed"] == 0, out  # no version parsed per call
    assert out["shared_plain"] == 0, out  # no metric attributes built for a plain call
    assert out["shared_stream"] == 0, out  # nor at the end of a stream
    assert out["checks_back"] is True  # unloading puts the instrumentation's own back
    _calls_are_whole(out["rows"])


def test_metrics_recorded_when_a_meter_provider_reads_them() -> None:
    out = run_py(METRICS % {"before": SDK_METERS, "read": READ_METRICS})
    assert out["shared_plain"] == 1, out
    assert out["shared_stream"] >= 1, out
    assert "gen_ai.client.operation.duration" in out["metrics"], out["metrics"]
    assert "gen_ai.client.token.usage" in out["metrics"], out["metrics"]
    _calls_are_whole(out["rows"])


QUICK_ATTRIBUTES = """
import re
import sys
import llmtrace_nb
import opentelemetry.instrumentation.openai.shared as shared
from opentelemetry.sdk import trace as sdk_trace
NAMES = ("_set_span_attribute", "_get_openai_base_url", "_set_client_attributes")
originals = {name: getattr(shared, name) for name in NAMES}
with capture_output():
    ip.run_line_magic("load_ext", "llmtrace_nb")
swapped = [(m, name) for n, m in sys.modules.items()
           if n.startswith("opentelemetry.instrumentation.openai.") for name in NAMES
           if getattr(m, name, None) not in (None, originals[name])]
through_sdk = []
real_set_attribute = sdk_trace.Span.set_attribute
def counted(self, key, value):
    through_sdk.append(key)
    return real_set_attribute(self, key, value)
sdk_trace.Span.set_attribute = counted
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
def last_attributes():
    through_sdk.clear()
    cell("%%trace --quiet\\n"
         "client.chat.completions.create(model='gpt-4o-mini', temperature=0.5, "
         "max_tokens=64, top_p=0.9, messages=[{'role': 'user', 'content': 'Hello'}], "
         f"tools={TOOLS})\\n")
    df = llmtrace_nb.spans_df()
    attrs = dict(df[df["kind"] == "llm"].iloc[-1]["attributes"])
    attrs.pop("gen_ai.response.id")
    # (the demo numbers its tool calls across calls)
    attrs = {k: re.sub(r"call_demo_[0-9]+", "call_demo", v) if isinstance(v, str) else v
             for k, v in attrs.items()}
    return attrs, len(through_sdk)
quick_attrs, quick_sdk = last_attributes()
for m, name in swapped:
    setattr(m, name, originals[name])
plain_attrs, plain_sdk = last_attributes()
with capture_output():
    ip.run_line_magic("unload_ext", "llmtrace_nb")
print(json.dumps({"swapped": sorted({name for _, name in swapped}),
                  "modules": len({id(m) for m, _ in swapped}),
                  "quick_sdk": quick_sdk, "plain_sdk": plain_sdk,
                  "quick": list(quick_attrs.items()), "plain": list(plain_attrs.items())},
                 default=str))
"""


def test_plain_attributes_are_written_as_set_attribute_writes_them() -> None:
    """The OpenAI instrumentation's attributes go into the span without the SDK's locks
    (sdk.PLAIN_SETTER), with the base URL's text made once: the span must end with the
    same attributes, in the same order, as with the instrumentation's own functions, and
    anything but a plain value still goes through set_attribute."""
    out = run_py(QUICK_ATTRIBUTES)
    assert out["swapped"] == sorted(["_set_span_attribute", "_get_openai_base_url",
                                     "_set_client_attributes"]), out
    assert out["modules"] >= 2, out  # shared and the wrappers that imported them by name
    assert out["plain_sdk"] > 10, out
    assert out["quick_sdk"] <= out["plain_sdk"] - 10, out
    assert out["quick"] == out["plain"]


def test_the_plain_setter_declines_what_the_sdk_would_limit() -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider

    from llmtrace_nb._capture import sdk

    assert sdk.PLAIN_SETTER is not None  # chosen for the pinned SDK
    set_plain = sdk.PLAIN_SETTER

    def span(**limits: object) -> object:
        provider = TracerProvider(resource=Resource.get_empty(), shutdown_on_exit=False,
                                  span_limits=SpanLimits(**limits))
        return provider.get_tracer("t").start_span("s")

    full = span(max_span_attributes=1)
    assert set_plain(full, "a", 1) and not set_plain(full, "b", 2)
    assert not set_plain(span(max_attribute_length=4), "a", "longer")
    assert not set_plain(span(), "list", ["not", "plain"])  # the SDK stores a tuple copy
    assert not set_plain(span(), "mixed", ("stop", 1))
    reasons = span()
    assert set_plain(reasons, "finish", ("stop", "length"))
    assert dict(reasons.attributes) == {"finish": ("stop", "length")}  # type: ignore[attr-defined]
    assert not set_plain(span(), "", "no key")
    ended = span()
    ended.end()  # type: ignore[attr-defined]
    assert not set_plain(ended, "a", 1)
    assert dict(ended.attributes) == {}  # type: ignore[attr-defined]


BASE_URLS = """
import openai
import opentelemetry.instrumentation.openai.shared as shared
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from llmtrace_nb._capture import compat
tracer = TracerProvider(resource=Resource.get_empty(), shutdown_on_exit=False).get_tracer("t")
plain = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-x")
azure = openai.AzureOpenAI(azure_endpoint="http://127.0.0.1:9", api_key="k",
                           api_version="2024-10-21")
originals = (shared._get_openai_base_url, shared._set_client_attributes)
undo = compat.cached_openai_base_urls()
quick_url, quick_client = shared._get_openai_base_url, shared._set_client_attributes
same = []
for client in (plain, azure):
    ours, theirs = tracer.start_span("ours"), tracer.start_span("theirs")
    quick_client(ours, client.chat.completions)
    originals[1](theirs, client.chat.completions)
    same.append([dict(ours.attributes) == dict(theirs.attributes),
                 quick_url(client.chat.completions) == originals[0](client.chat.completions),
                 sorted(ours.attributes)])
import gc, weakref
url = plain.base_url
ref, field, held_url, text = compat._BASE_URLS[id(plain)]
cached = ref() is plain and vars(plain)[field] is url is held_url and text == str(url)
plain.base_url = "http://127.0.0.1:10/v2"  # a new URL object: a new text
moved = quick_url(plain.chat.completions)
class Odd(openai.OpenAI):  # a base_url that is not the field: asked every time
    turn = 0
    @property
    def base_url(self):
        Odd.turn += 1
        return f"http://127.0.0.1:{Odd.turn}/"
    @base_url.setter
    def base_url(self, url):
        pass
odd = Odd(base_url="http://127.0.0.1:9/v1", api_key="k")
odd_texts = [compat._base_url_text(odd) for _ in range(2)]
for port in range(200):  # bounded, however many clients
    compat._base_url_text(openai.OpenAI(base_url=f"http://127.0.0.1:{port}", api_key="k"))
passing = openai.OpenAI(base_url="http://127.0.0.1:8/v1", api_key="k")
compat._base_url_text(passing)
gone = weakref.ref(passing)
del passing
gc.collect()
undo()
print(json.dumps({"swapped": [quick_url is not originals[0], quick_client is not originals[1]],
                  "same": same, "cached": cached, "moved": moved, "odd": odd_texts,
                  "freed": gone() is None,
                  "held": len(compat._BASE_URLS), "bound": compat._BASE_URLS_BOUND,
                  "back": (shared._get_openai_base_url,
                           shared._set_client_attributes) == originals}))
"""


def test_the_base_url_text_is_made_once_and_azure_keeps_its_own_step() -> None:
    out = run_py("from opentelemetry.instrumentation.openai import OpenAIInstrumentor\n"
                 "OpenAIInstrumentor().instrument()\n" + BASE_URLS)
    assert out["swapped"] == [True, True]
    (plain_same, plain_url, plain_keys), (azure_same, azure_url, azure_keys) = out["same"]
    assert plain_same and plain_url and azure_same and azure_url
    assert plain_keys == ["gen_ai.openai.api_base"]
    assert "gen_ai.openai.api_version" in azure_keys  # Azure's own step ran
    assert out["cached"] and out["moved"] == "http://127.0.0.1:10/v2/"
    assert out["odd"] == ["http://127.0.0.1:1/", "http://127.0.0.1:2/"]
    assert out["held"] <= out["bound"] and out["back"]
    assert out["freed"]  # the cache keeps no client alive


CONTENT_SWITCH = """
import os
from opentelemetry import context
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
OpenAIInstrumentor().instrument()
import opentelemetry.instrumentation.openai.shared.chat_wrappers as chat
import opentelemetry.instrumentation.openai.utils as utils
from llmtrace_nb._capture import compat
original = utils.should_send_prompts
undo = compat.quick_content_switch()
quick = chat.should_send_prompts
answers = []
for value in [None, "true", "false", "TRUE", " yes ", "0", "on", "garbage", "", "1"]:
    if value is None:
        os.environ.pop("TRACELOOP_TRACE_CONTENT", None)
    else:
        os.environ["TRACELOOP_TRACE_CONTENT"] = value
    for override in [None, True, "true", False, "off"]:
        token = context.attach(context.set_value("override_enable_content_tracing", override))
        answers.append([value, repr(override), quick(), original()])
        context.detach(token)
for n in range(40):  # many distinct values: the memo stays bounded
    os.environ["TRACELOOP_TRACE_CONTENT"] = f"v{n}"
    quick()
undo()
print(json.dumps({"swapped": quick is not original, "answers": answers,
                  "back": chat.should_send_prompts is original}))
"""


def test_the_content_switch_is_read_as_the_instrumentation_reads_it() -> None:
    out = run_py(CONTENT_SWITCH)
    assert out["swapped"] and out["back"]
    assert all(ours == theirs for _, _, ours, theirs in out["answers"]), out["answers"]
    # both answers occur: the test can tell them apart
    assert {ours for _, _, ours, _ in out["answers"]} == {True, False}
