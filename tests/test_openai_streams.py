"""llmtrace_nb._capture.openai_streams: OpenLLMetry's spans of streamed OpenAI calls.

Every scenario runs the real openai client over HTTP against the demo server, in a fresh
interpreter: ``OpenAIInstrumentor`` is a process-wide singleton, and the rest of the suite
has already turned it on (through llmtrace_nb) in this one. Each subprocess instruments
with a private ``TracerProvider`` + ``InMemorySpanExporter``, applies ``patch()``, and
prints what it saw as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

SCOPE = "opentelemetry.instrumentation.openai.v1"
TTFT = "gen_ai.response.time_to_first_chunk"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
PROMPT = "hello [cached] world"
MODELS = ("gpt-4o-mini", "o3-mini")  # a dated snapshot answer; reasoning tokens
CHUNK_DELAY = 0.003  # so the first chunk is clearly before the end of the stream

PRELUDE = r'''
import asyncio, gc, json, os, sys, time, warnings

from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import openai
from llmtrace_nb._capture import openai_streams as _openai_streams
from llmtrace_nb._capture.compat import unwrap_openai

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
instrumentor = OpenAIInstrumentor()
assert not instrumentor.is_instrumented_by_opentelemetry
instrumentor.instrument(tracer_provider=provider)

BASE = os.environ["DEMO_BASE_URL"]
PROMPT = "hello [cached] world"
MESSAGES = [{"role": "user", "content": PROMPT}]
CHAT_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]
RESPONSE_TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather",
                   "parameters": CHAT_TOOLS[0]["function"]["parameters"]}]
client = openai.OpenAI(base_url=BASE, api_key="sk-demo", max_retries=0)
OUT = {}


def aclient():
    return openai.AsyncOpenAI(base_url=BASE, api_key="sk-demo", max_retries=0)


def plain(value):
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def span_json(span):
    return {
        "name": span.name,
        "scope": span.instrumentation_scope.name,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {k: plain(v) for k, v in span.attributes.items()},
        "events": [e.name for e in span.events],
    }


def record(label, fn, *args):
    """Run one call shape; keep its spans, what the server sent and what it warned."""
    exporter.clear()
    marks = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(marks, *args)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
            error = None
        except Exception as exc:
            result, error = None, type(exc).__name__
        gc.collect()
    OUT[label] = {
        "spans": [span_json(s) for s in exporter.get_finished_spans()],
        "expected": result,
        "marks": marks,
        "error": error,
        "warnings": [str(w.message) for w in caught if "never awaited" in str(w.message)],
    }


# -- what the server answered, read from the stream or body the caller got

class Chat:
    def __init__(self):
        self.text, self.finish, self.usage, self.id, self.model = "", None, None, None, None
        self.tool = False

    def chunk(self, chunk, marks):
        now = time.time_ns()
        if chunk.choices:  # the first chunk with content, as for the span's TTFT
            marks.setdefault("first_chunk", now)
        marks["last_chunk"] = now
        self.id, self.model = chunk.id, chunk.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            self.text += choice.delta.content or ""
            self.tool = self.tool or bool(choice.delta.tool_calls)
            self.finish = choice.finish_reason or self.finish

    def completion(self, completion):
        self.id, self.model, self.usage = completion.id, completion.model, completion.usage
        self.text = completion.choices[0].message.content or ""
        self.finish = completion.choices[0].finish_reason
        self.tool = bool(completion.choices[0].message.tool_calls)

    def expected(self):
        u = self.usage
        return {"id": self.id, "model": self.model, "text": self.text, "tool": self.tool,
                "finish": {"tool_calls": "tool_call"}.get(self.finish, self.finish),
                "input": u.prompt_tokens, "output": u.completion_tokens,
                "total": u.total_tokens, "cached": u.prompt_tokens_details.cached_tokens,
                "reasoning": u.completion_tokens_details.reasoning_tokens}


def is_output_event(event):
    # response.created / in_progress come before the model has produced anything
    return event.type == "response.output_item.added" or event.type.endswith(".delta")


class Resp:
    def __init__(self):
        self.response = None

    def event(self, event, marks):
        now = time.time_ns()
        if is_output_event(event):
            marks.setdefault("first_chunk", now)
        marks["last_chunk"] = now
        if event.type == "response.completed":
            self.response = event.response

    def expected(self):
        r = self.response
        tool = any(item.type == "function_call" for item in r.output)
        return {"id": r.id, "model": r.model, "text": r.output_text, "tool": tool,
                "finish": "tool_call" if tool else "stop",
                "input": r.usage.input_tokens, "output": r.usage.output_tokens,
                "total": r.usage.total_tokens,
                "cached": r.usage.input_tokens_details.cached_tokens,
                "reasoning": r.usage.output_tokens_details.reasoning_tokens}


def chat_kwargs(model, stream, tools=False):
    kwargs = {"model": model, "messages": MESSAGES}
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
    if tools:
        kwargs["tools"] = CHAT_TOOLS
    return kwargs


def resp_kwargs(model, stream, tools=False):
    kwargs = {"model": model, "input": PROMPT}
    if stream:
        kwargs["stream"] = True
    if tools:
        kwargs["tools"] = RESPONSE_TOOLS
    return kwargs


# -- with_streaming_response, read to the end inside the context

def wsr_chat_sync(marks, model, stream, tools=False):
    seen = Chat()
    with client.chat.completions.with_streaming_response.create(
            **chat_kwargs(model, stream, tools)) as response:
        body = response.parse()
        if stream:
            for chunk in body:
                seen.chunk(chunk, marks)
        else:
            seen.completion(body)
        marks["read"] = time.time_ns()
    marks["closed"] = time.time_ns()
    return seen.expected()


async def wsr_chat_async(marks, model, stream, tools=False):
    seen = Chat()
    async with aclient() as ac:
        async with ac.chat.completions.with_streaming_response.create(
                **chat_kwargs(model, stream, tools)) as response:
            body = await response.parse()
            if stream:
                async for chunk in body:
                    seen.chunk(chunk, marks)
            else:
                seen.completion(body)
            marks["read"] = time.time_ns()
        marks["closed"] = time.time_ns()
    return seen.expected()


def wsr_resp_sync(marks, model, stream, tools=False):
    seen = Resp()
    with client.responses.with_streaming_response.create(
            **resp_kwargs(model, stream, tools)) as response:
        body = response.parse()
        if stream:
            for event in body:
                seen.event(event, marks)
        else:
            seen.response = body
        marks["read"] = time.time_ns()
    marks["closed"] = time.time_ns()
    return seen.expected()


async def wsr_resp_async(marks, model, stream, tools=False):
    seen = Resp()
    async with aclient() as ac:
        async with ac.responses.with_streaming_response.create(
                **resp_kwargs(model, stream, tools)) as response:
            body = await response.parse()
            if stream:
                async for event in body:
                    seen.event(event, marks)
            else:
                seen.response = body
            marks["read"] = time.time_ns()
        marks["closed"] = time.time_ns()
    return seen.expected()


WSR = {("chat", "sync"): wsr_chat_sync, ("chat", "async"): wsr_chat_async,
       ("responses", "sync"): wsr_resp_sync, ("responses", "async"): wsr_resp_async}


def wsr_matrix(models):
    for model in models:
        for (api, mode), fn in WSR.items():
            for stream in (True, False):
                record(f"wsr-{api}-{mode}-{'stream' if stream else 'body'}-{model}",
                       fn, model, stream)


# -- the other streamed call shapes, and the ordinary calls

def create_chat_sync(marks, model, stream):
    seen = Chat()
    body = client.chat.completions.create(**chat_kwargs(model, stream))
    if stream:
        for chunk in body:
            seen.chunk(chunk, marks)
    else:
        seen.completion(body)
    marks["read"] = time.time_ns()
    return seen.expected()


async def create_chat_async(marks, model, stream):
    seen = Chat()
    async with aclient() as ac:
        async for chunk in await ac.chat.completions.create(**chat_kwargs(model, stream)):
            seen.chunk(chunk, marks)
        marks["read"] = time.time_ns()
    return seen.expected()


def create_resp_sync(marks, model, stream):
    seen = Resp()
    body = client.responses.create(**resp_kwargs(model, stream))
    if stream:
        for event in body:
            seen.event(event, marks)
    else:
        seen.response = body
    marks["read"] = time.time_ns()
    return seen.expected()


async def create_resp_async(marks, model, stream):
    seen = Resp()
    async with aclient() as ac:
        async for event in await ac.responses.create(**resp_kwargs(model, stream)):
            seen.event(event, marks)
        marks["read"] = time.time_ns()
    return seen.expected()


def helper_chat_sync(marks, model):
    kwargs = chat_kwargs(model, True)
    del kwargs["stream"]
    with client.chat.completions.stream(**kwargs) as stream:
        for _ in stream:
            marks.setdefault("first_chunk", time.time_ns())
        completion = stream.get_final_completion()
        marks["read"] = time.time_ns()
    return {"id": completion.id}


async def helper_chat_async(marks, model):
    kwargs = chat_kwargs(model, True)
    del kwargs["stream"]
    async with aclient() as ac:
        async with ac.chat.completions.stream(**kwargs) as stream:
            async for _ in stream:
                marks.setdefault("first_chunk", time.time_ns())
            completion = await stream.get_final_completion()
            marks["read"] = time.time_ns()
    return {"id": completion.id}


def helper_resp_sync(marks, model):
    with client.responses.stream(model=model, input=PROMPT) as stream:
        for event in stream:
            if is_output_event(event):
                marks.setdefault("first_chunk", time.time_ns())
        response = stream.get_final_response()
        marks["read"] = time.time_ns()
    return {"id": response.id}


async def helper_resp_async(marks, model):
    async with aclient() as ac:
        async with ac.responses.stream(model=model, input=PROMPT) as stream:
            async for event in stream:
                if is_output_event(event):
                    marks.setdefault("first_chunk", time.time_ns())
            response = await stream.get_final_response()
            marks["read"] = time.time_ns()
    return {"id": response.id}


STREAMED = {
    "create-chat-sync": lambda marks, model: create_chat_sync(marks, model, True),
    "create-chat-async": lambda marks, model: create_chat_async(marks, model, True),
    "create-responses-sync": lambda marks, model: create_resp_sync(marks, model, True),
    "create-responses-async": lambda marks, model: create_resp_async(marks, model, True),
    "helper-chat-sync": helper_chat_sync,
    "helper-chat-async": helper_chat_async,
    "helper-responses-sync": helper_resp_sync,
    "helper-responses-async": helper_resp_async,
}


def streamed_variants(model):
    for label, fn in STREAMED.items():
        record(label, fn, model)


def emit():
    print(json.dumps(OUT))
'''

MATRIX = r'''
_openai_streams.patch()
wsr_matrix(MODELS)
streamed_variants("gpt-4o-mini")
for stream in (True, False):
    kind = "stream" if stream else "body"
    record(f"ordinary-chat-{kind}", create_chat_sync, "o3-mini", stream)
    record(f"ordinary-responses-{kind}", create_resp_sync, "o3-mini", stream)
for mode in ("sync", "async"):
    record(f"tools-chat-{mode}", WSR[("chat", mode)], "gpt-4o-mini", True, True)
    record(f"tools-responses-{mode}", WSR[("responses", mode)], "gpt-4o-mini", True, True)
    record(f"parse-chat-{mode}", PARSE[mode], "gpt-4o-mini")


def early_chat(marks):
    with client.chat.completions.with_streaming_response.create(
            **chat_kwargs("gpt-4o-mini", True)) as response:
        next(iter(response.parse()))
        marks["read"] = time.time_ns()
    marks["closed"] = time.time_ns()


def early_resp(marks):
    with client.responses.with_streaming_response.create(
            **resp_kwargs("gpt-4o-mini", True)) as response:
        for event in response.parse():
            if event.type == "response.output_text.delta":
                break
        marks["read"] = time.time_ns()
    marks["closed"] = time.time_ns()


async def early_chat_async(marks):
    async with aclient() as ac:
        async with ac.chat.completions.with_streaming_response.create(
                **chat_kwargs("gpt-4o-mini", True)) as response:
            body = await response.parse()
            await body.__anext__()
            marks["read"] = time.time_ns()
        marks["closed"] = time.time_ns()


async def agents_like(marks):
    # openai-agents' streamed run: enter by hand, parse, stop at response.completed,
    # and leave the context later.
    seen = Resp()
    async with aclient() as ac:
        manager = ac.responses.with_streaming_response.create(
            **resp_kwargs("gpt-4o-mini", True))
        response = await manager.__aenter__()
        marks["request_id"] = response.request_id
        async for event in await response.parse():
            seen.event(event, marks)
            if event.type == "response.completed":
                break
        marks["read"] = time.time_ns()
        await manager.__aexit__(None, None, None)
        marks["closed"] = time.time_ns()
    return seen.expected()


def failing(marks):
    with client.chat.completions.with_streaming_response.create(
            model="demo-error-500", messages=MESSAGES, stream=True) as response:
        response.parse()


async def failing_async(marks):
    async with aclient() as ac:
        async with ac.responses.with_streaming_response.create(
                model="demo-error-500", input=PROMPT, stream=True) as response:
            await response.parse()


def raw_read(marks):
    with client.chat.completions.with_streaming_response.create(
            **chat_kwargs("gpt-4o-mini", True)) as response:
        lines = [line for line in response.iter_lines() if line]
        marks["read"] = time.time_ns()
    marks["closed"] = time.time_ns()
    return {"lines": len(lines)}


record("early-chat-sync", early_chat)
record("early-chat-async", early_chat_async)
record("early-responses-sync", early_resp)
record("agents-like", agents_like)
record("error-chat-sync", failing)
record("error-responses-async", failing_async)
record("raw-read", raw_read)
emit()
'''

PARSE_FNS = r'''
def parse_chat_sync(marks, model):
    seen = Chat()
    with client.chat.completions.with_streaming_response.parse(
            model=model, messages=MESSAGES) as response:
        seen.completion(response.parse())
        marks["read"] = time.time_ns()
    return seen.expected()


async def parse_chat_async(marks, model):
    seen = Chat()
    async with aclient() as ac:
        async with ac.chat.completions.with_streaming_response.parse(
                model=model, messages=MESSAGES) as response:
            seen.completion(await response.parse())
            marks["read"] = time.time_ns()
    return seen.expected()


PARSE = {"sync": parse_chat_sync, "async": parse_chat_async}
'''

CONTENT_OFF = r'''
assert os.environ["TRACELOOP_TRACE_CONTENT"] == "false"
_openai_streams.patch()
wsr_matrix(["gpt-4o-mini"])
streamed_variants("gpt-4o-mini")
emit()
'''

UNDO = r'''
from openai.resources.chat.completions.completions import (
    AsyncCompletionsWithStreamingResponse, Completions, CompletionsWithStreamingResponse)
from openai.resources.responses.responses import (
    AsyncResponsesWithStreamingResponse, Responses, ResponsesWithStreamingResponse)
from opentelemetry.instrumentation.openai.shared.chat_wrappers import ChatStream
from opentelemetry.instrumentation.openai.v1.responses_wrappers import ResponseStream

CLASSES = (CompletionsWithStreamingResponse, AsyncCompletionsWithStreamingResponse,
           ResponsesWithStreamingResponse, AsyncResponsesWithStreamingResponse,
           ChatStream, ResponseStream, Completions, Responses)


def snapshot():
    """Every attribute of the classes patch() may touch (and two it must not)."""
    return {c: dict(vars(c)) for c in CLASSES}


def same(a, b):
    return all(a[c].keys() == b[c].keys() and all(a[c][k] is b[c][k] for k in a[c])
               for c in CLASSES)


checks = {}
wsr = client.chat.completions.with_streaming_response  # made before patch()
chat_create = wsr.create
responses_create = client.responses.with_streaming_response.create
before = snapshot()
undo = _openai_streams.patch()
checks["changed"] = not same(before, snapshot())
checks["patched_once"] = (
    vars(ChatStream)["_process_item"].__wrapped__ is before[ChatStream]["_process_item"]
    and vars(ResponseStream)["_process_chunk"].__wrapped__
    is before[ResponseStream]["_process_chunk"])
checks["intercepted"] = (wsr.create is not chat_create
                         and wsr.__dict__["create"] is chat_create)
patched = snapshot()
checks["second_patch_same_undo"] = _openai_streams.patch() is undo
checks["second_patch_changes_nothing"] = same(patched, snapshot())
record("patched-wsr-chat", wsr_chat_sync, "gpt-4o-mini", True)
record("patched-wsr-responses", wsr_resp_sync, "gpt-4o-mini", True)
# ordinary calls: the very same methods, and not one call into the patch's code
checks["ordinary_methods_same"] = all(
    patched[c][name] is before[c][name] for c in (Completions, Responses)
    for name in ("create", "parse"))
ours = _openai_streams.__file__
called = set()


def profiler(frame, event, arg):
    if event == "call":
        called.add(frame.f_code.co_filename)


sys.setprofile(profiler)
try:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.responses.create(model="gpt-4o-mini", input=PROMPT)
finally:
    sys.setprofile(None)
checks["ordinary_calls_run_none_of_it"] = len(called) > 50 and ours not in called
exporter.clear()
# a client first used while patched
late = openai.OpenAI(base_url=BASE, api_key="sk-demo", max_retries=0).chat.completions
late_wsr = late.with_streaming_response

undo()
checks["restored"] = same(before, snapshot())
checks["restored_methods"] = (
    client.chat.completions.with_streaming_response.create is chat_create
    and client.responses.with_streaming_response.create is responses_create)
undo()  # a second undo is harmless
checks["restored_twice"] = same(before, snapshot())
checks["late_client_plain"] = late_wsr.create is late_wsr.__dict__["create"]
record("undone-wsr-chat", wsr_chat_sync, "gpt-4o-mini", True)
record("undone-wsr-responses", wsr_resp_sync, "gpt-4o-mini", True)
record("undone-create-chat", create_chat_sync, "gpt-4o-mini", True)
record("undone-create-responses", create_resp_sync, "gpt-4o-mini", True)

again = _openai_streams.patch()
checks["repatch_new_undo"] = again is not undo and not same(before, snapshot())
record("repatched-wsr-chat", wsr_chat_sync, "gpt-4o-mini", True)
again()
checks["restored_after_repatch"] = same(before, snapshot())

instrumentor.uninstrument()
unwrap_openai()
checks["uninstrumented"] = not hasattr(vars(Completions)["create"], "_self_wrapper")
# a new client: the old one's with_streaming_response captured the instrumented method
client = openai.OpenAI(base_url=BASE, api_key="sk-demo", max_retries=0)
undo = _openai_streams.patch()
record("uninstrumented-wsr-chat", wsr_chat_sync, "gpt-4o-mini", True)
undo()
checks["restored_uninstrumented"] = all(
    "create" not in vars(c) for c in CLASSES[:4])
OUT["checks"] = checks
emit()
'''

UNEXPECTED = r'''
from openai.resources.responses.responses import AsyncResponsesWithStreamingResponse
from opentelemetry.instrumentation.openai.shared.chat_wrappers import ChatStream

# another version: the method is a class attribute, not set per instance
AsyncResponsesWithStreamingResponse.create = property(lambda self: None)
before = dict(vars(ChatStream))
undo = _openai_streams.patch()
checks = {
    "noop": undo is _openai_streams._noop,
    "untouched": all(vars(ChatStream)[k] is v for k, v in before.items()),
    "wsr_untouched": "create" not in vars(
        __import__("openai").resources.chat.completions.completions
        .CompletionsWithStreamingResponse),
}
undo()
OUT["checks"] = checks
record("unpatched-wsr-responses", wsr_resp_sync, "gpt-4o-mini", True)
emit()
'''


def run_py(body: str, base_url: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    code = PRELUDE + PARSE_FNS + f"MODELS = {MODELS!r}\n" + textwrap.dedent(body)
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("OTEL_", "TRACELOOP_"))}
    full_env.update({"DEMO_BASE_URL": base_url, **(env or {})})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180, env=full_env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def slow_chunks(demo_server: Any) -> Iterator[Any]:
    """The demo server, spacing stream chunks so TTFT is well inside the span."""
    previous = demo_server.chunk_delay
    demo_server.chunk_delay = CHUNK_DELAY
    try:
        yield demo_server
    finally:
        demo_server.chunk_delay = previous


@pytest.fixture(scope="module")
def matrix(slow_chunks: Any) -> dict[str, Any]:
    return run_py(MATRIX, slow_chunks.base_url)


@pytest.fixture(scope="module")
def content_off(slow_chunks: Any) -> dict[str, Any]:
    return run_py(CONTENT_OFF, slow_chunks.base_url, {"TRACELOOP_TRACE_CONTENT": "false"})


@pytest.fixture(scope="module")
def undone(slow_chunks: Any) -> dict[str, Any]:
    return run_py(UNDO, slow_chunks.base_url)


# -- helpers


def only_span(result: dict[str, Any]) -> dict[str, Any]:
    assert result["error"] is None, result
    assert result["warnings"] == []
    spans = result["spans"]
    assert len(spans) == 1, [s["name"] for s in spans]
    return spans[0]


def assert_ttft(span: dict[str, Any], marks: dict[str, int]) -> float:
    ttft = span["attributes"][TTFT]
    duration = span["end"] - span["start"]
    assert isinstance(ttft, float)
    assert 0 < ttft * 1e9 < duration
    # measured at the first chunk the caller saw (or at a chunk it never saw, for the
    # helpers, which read a chunk ahead)
    if "first_chunk" in marks:
        assert span["start"] + ttft * 1e9 <= marks["first_chunk"]
    return float(ttft)


def assert_full_span(span: dict[str, Any], api: str, model: str, stream: bool,
                     expected: dict[str, Any], content: bool = True) -> None:
    attrs = span["attributes"]
    assert span["name"] == ("openai.chat" if api == "chat" else "openai.response")
    assert span["scope"] == SCOPE
    assert span["status"] != "ERROR"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == model
    assert attrs["gen_ai.response.model"] == expected["model"]
    assert attrs["gen_ai.response.id"] == expected["id"]
    assert attrs["gen_ai.is_streaming"] is stream
    assert attrs["gen_ai.usage.input_tokens"] == expected["input"]
    assert attrs["gen_ai.usage.output_tokens"] == expected["output"]
    assert attrs["gen_ai.usage.total_tokens"] == expected["total"]
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == expected["cached"]
    assert attrs["gen_ai.usage.reasoning_tokens"] == expected["reasoning"]
    assert attrs["gen_ai.response.finish_reasons"] == [expected["finish"]]
    assert "gen_ai.headers" not in attrs  # openai's internal raw-response marker
    if content:
        assert PROMPT in json.loads(attrs[INPUT_MESSAGES])[0]["parts"][0]["content"]
        output = json.loads(attrs[OUTPUT_MESSAGES])
        parts = output[0]["parts"]
        if expected["tool"]:
            assert any(p["type"] == "tool_call" and p["name"] == "get_weather" for p in parts)
        else:
            assert parts[0]["content"] == expected["text"]
    else:
        assert INPUT_MESSAGES not in attrs
        assert OUTPUT_MESSAGES not in attrs


WSR_CASES = [(api, mode, stream, model)
             for model in MODELS
             for api in ("chat", "responses")
             for mode in ("sync", "async")
             for stream in (True, False)]


def wsr_label(api: str, mode: str, stream: bool, model: str) -> str:
    return f"wsr-{api}-{mode}-{'stream' if stream else 'body'}-{model}"


# -- with_streaming_response


@pytest.mark.parametrize(("api", "mode", "stream", "model"), WSR_CASES,
                         ids=[wsr_label(*case)[4:] for case in WSR_CASES])
def test_with_streaming_response_makes_one_full_span(
        matrix: dict[str, Any], api: str, mode: str, stream: bool, model: str) -> None:
    result = matrix[wsr_label(api, mode, stream, model)]
    span = only_span(result)
    expected, marks = result["expected"], result["marks"]
    assert expected["reasoning"] == (10 if model.startswith("o") else 0)
    assert expected["cached"] > 0
    assert_full_span(span, api, model, stream, expected)
    # ended once the body was read, not when the request was sent or the context left
    assert span["end"] <= marks["read"]
    if stream:
        assert span["end"] >= marks["last_chunk"]
        assert_ttft(span, marks)
        if api == "chat":  # chunk events up to the first token only (the demo's first
            # chunk has a choice), as for create(stream=True)
            assert span["events"].count("gen_ai.content.completion.chunk") == 1
    else:
        assert TTFT not in span["attributes"]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "body"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_same_attributes_as_the_ordinary_call(
        matrix: dict[str, Any], api: str, stream: bool) -> None:
    kind = "stream" if stream else "body"
    ordinary = only_span(matrix[f"ordinary-{api}-{kind}"])
    for mode in ("sync", "async"):
        span = only_span(matrix[f"wsr-{api}-{mode}-{kind}-o3-mini"])
        assert set(span["attributes"]) == set(ordinary["attributes"])
        assert span["name"] == ordinary["name"]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_streamed_tool_call(matrix: dict[str, Any], api: str, mode: str) -> None:
    result = matrix[f"tools-{api}-{mode}"]
    span = only_span(result)
    assert result["expected"]["tool"]
    assert_full_span(span, api, "gpt-4o-mini", True, result["expected"])
    assert span["attributes"]["gen_ai.response.finish_reasons"] == ["tool_call"]
    assert_ttft(span, result["marks"])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_chat_parse_with_streaming_response(matrix: dict[str, Any], mode: str) -> None:
    result = matrix[f"parse-chat-{mode}"]
    assert_full_span(only_span(result), "chat", "gpt-4o-mini", False, result["expected"])


@pytest.mark.parametrize("label", ["early-chat-sync", "early-chat-async",
                                   "early-responses-sync"])
def test_stream_left_early_ends_when_the_context_is_left(
        matrix: dict[str, Any], label: str) -> None:
    result = matrix[label]
    span = only_span(result)
    marks = result["marks"]
    assert marks["read"] < span["end"] <= marks["closed"]
    assert span["status"] != "ERROR"
    assert span["attributes"]["gen_ai.is_streaming"] is True
    ttft = span["attributes"][TTFT]
    assert 0 < ttft * 1e9 < span["end"] - span["start"]


def test_agents_style_stream(matrix: dict[str, Any]) -> None:
    """openai-agents: __aenter__ by hand, stop at response.completed, __aexit__ later."""
    result = matrix["agents-like"]
    span = only_span(result)
    assert result["marks"]["request_id"]
    assert_full_span(span, "responses", "gpt-4o-mini", True, result["expected"])
    assert_ttft(span, result["marks"])
    assert span["end"] <= result["marks"]["closed"]


@pytest.mark.parametrize(("label", "name"), [("error-chat-sync", "openai.chat"),
                                             ("error-responses-async", "openai.response")])
def test_request_error_propagates_with_one_error_span(
        matrix: dict[str, Any], label: str, name: str) -> None:
    result = matrix[label]
    assert result["error"] == "InternalServerError"
    assert [s["name"] for s in result["spans"]] == [name]
    assert result["spans"][0]["status"] == "ERROR"


def test_raw_read_still_ends_its_span(matrix: dict[str, Any]) -> None:
    """Read with iter_lines() instead of parse(): the request only, ended at close."""
    result = matrix["raw-read"]
    span = only_span(result)
    assert result["expected"]["lines"] > 3
    assert result["marks"]["read"] < span["end"] <= result["marks"]["closed"]
    assert "gen_ai.response.id" not in span["attributes"]


# -- time to first chunk on every streamed call


@pytest.mark.parametrize("label", ["create-chat-sync", "create-chat-async",
                                   "create-responses-sync", "create-responses-async",
                                   "helper-chat-sync", "helper-chat-async",
                                   "helper-responses-sync", "helper-responses-async"])
def test_time_to_first_chunk_on_streamed_calls(matrix: dict[str, Any], label: str) -> None:
    result = matrix[label]
    span = only_span(result)
    assert span["attributes"]["gen_ai.response.id"] == result["expected"]["id"]
    assert_ttft(span, result["marks"])


@pytest.mark.parametrize("label", ["create-chat-sync", "create-chat-async",
                                   "helper-chat-sync", "helper-chat-async"])
def test_a_chat_stream_keeps_its_chunk_events_up_to_the_first_token(
        matrix: dict[str, Any], label: str) -> None:
    """The instrumentation adds an event a chunk; past the first token they say nothing
    and cost the caller, so only the first stays, and the answer is still whole."""
    result = matrix[label]
    span = only_span(result)
    assert span["events"] == ["gen_ai.content.completion.chunk"]
    output = json.loads(span["attributes"][OUTPUT_MESSAGES])[0]["parts"][0]["content"]
    assert output == result["expected"].get("text", output) and output.strip()


def test_ordinary_calls_have_no_time_to_first_chunk(matrix: dict[str, Any]) -> None:
    for label in ("ordinary-chat-body", "ordinary-responses-body"):
        assert TTFT not in only_span(matrix[label])["attributes"]


def test_streamed_chat_has_reasoning_tokens(matrix: dict[str, Any]) -> None:
    result = matrix["ordinary-chat-stream"]
    assert only_span(result)["attributes"]["gen_ai.usage.reasoning_tokens"] == 10


# -- content capture off


@pytest.mark.parametrize(("api", "mode", "stream"),
                         [case[:3] for case in WSR_CASES if case[3] == "gpt-4o-mini"])
def test_content_off(content_off: dict[str, Any], api: str, mode: str, stream: bool) -> None:
    result = content_off[wsr_label(api, mode, stream, "gpt-4o-mini")]
    assert_full_span(only_span(result), api, "gpt-4o-mini", stream, result["expected"],
                     content=False)


def test_content_off_streamed_calls(content_off: dict[str, Any]) -> None:
    for label in ("create-chat-sync", "create-responses-async", "helper-chat-async",
                  "helper-responses-sync"):
        attrs = only_span(content_off[label])["attributes"]
        assert INPUT_MESSAGES not in attrs and OUTPUT_MESSAGES not in attrs
        assert TTFT in attrs


# -- patch twice, undo


def test_patch_is_idempotent(undone: dict[str, Any]) -> None:
    checks = undone["checks"]
    assert checks["changed"]
    assert checks["patched_once"]
    assert checks["intercepted"]
    assert checks["second_patch_same_undo"]
    assert checks["second_patch_changes_nothing"]
    for label in ("patched-wsr-chat", "patched-wsr-responses"):
        span = only_span(undone[label])
        assert span["attributes"]["gen_ai.response.id"] == undone[label]["expected"]["id"]
        assert isinstance(span["attributes"][TTFT], float)


def test_ordinary_calls_go_through_nothing_of_it(undone: dict[str, Any]) -> None:
    """Non-streamed create() keeps its methods, and runs no code of the module."""
    assert undone["checks"]["ordinary_methods_same"]
    assert undone["checks"]["ordinary_calls_run_none_of_it"]


def test_undo_restores_the_originals(undone: dict[str, Any]) -> None:
    checks = undone["checks"]
    assert checks["restored"]
    assert checks["restored_methods"]
    assert checks["restored_twice"]
    assert checks["late_client_plain"]
    assert checks["repatch_new_undo"]
    assert checks["restored_after_repatch"]


def test_after_undo_only_the_instrumentations_own_spans(undone: dict[str, Any]) -> None:
    # with_streaming_response: the instrumentation's request-only span for chat, none for
    # Responses; create(stream=True): full spans without time to first chunk
    chat = only_span(undone["undone-wsr-chat"])
    assert "gen_ai.response.id" not in chat["attributes"]
    assert TTFT not in chat["attributes"]
    assert undone["undone-wsr-responses"]["spans"] == []
    for label in ("undone-create-chat", "undone-create-responses"):
        attrs = only_span(undone[label])["attributes"]
        assert attrs["gen_ai.response.id"] == undone[label]["expected"]["id"]
        assert TTFT not in attrs
    assert TTFT in only_span(undone["repatched-wsr-chat"])["attributes"]


def test_not_instrumented_means_client_behaviour(undone: dict[str, Any]) -> None:
    assert undone["checks"]["uninstrumented"]
    result = undone["uninstrumented-wsr-chat"]
    assert result["error"] is None and result["spans"] == []
    assert result["expected"]["id"]
    assert undone["checks"]["restored_uninstrumented"]


def test_unexpected_internals_patch_nothing(slow_chunks: Any) -> None:
    out = run_py(UNEXPECTED, slow_chunks.base_url)
    assert out["checks"] == {"noop": True, "untouched": True, "wsr_untouched": True}
    # and the client still works as the instrumentation alone makes it
    assert out["unpatched-wsr-responses"]["error"] is None
    assert out["unpatched-wsr-responses"]["expected"]["id"]


# -- adding text chunks without the instrumentation's dict dump


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> Any:
    from openai.types.chat import ChatCompletionChunk

    return ChatCompletionChunk.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini-2024-07-18", "choices": choices, **extra})


def _delta(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish}


STREAMS = {
    "text": [
        _chunk([_delta(role="assistant", content="")]),
        _chunk([_delta(content="Hello")]), _chunk([_delta(content=" world")]),
        _chunk([_delta(content=None, finish="stop")]),
        _chunk([], usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})],
    "tool calls": [
        _chunk([_delta(role="assistant", content=None)]),
        _chunk([_delta(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                                    "function": {"name": "f", "arguments": ""}}])]),
        _chunk([_delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}])]),
        _chunk([_delta(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}])]),
        _chunk([_delta(finish="tool_calls")])],
    "a provider's extra fields": [
        _chunk([_delta(role="assistant", content="")], prompt_filter_results=[{"i": 0}]),
        _chunk([_delta(reasoning_content="thinking")]),
        _chunk([{**_delta(content="x"), "content_filter_results": {"hate": "safe"}}]),
        _chunk([{**_delta(content="y"), "usage": {"total_tokens": 9}}]),
        _chunk([_delta(content="z", finish="stop")])],
    "two choices": [
        _chunk([_delta(0, role="assistant", content="")]),
        _chunk([_delta(0, content="a")]), _chunk([_delta(1, role="assistant", content="b")]),
        _chunk([_delta(1, content="c")]), _chunk([_delta(0, content="d"), _delta(1, content="e")]),
        _chunk([_delta(0, finish="stop")]), _chunk([_delta(1, finish="length")])],
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_plain_chunks_are_added_as_the_instrumentation_adds_them(name: str) -> None:
    """Every chunk goes through _add_plain_chunk first (ChatStream's first chunk through
    the instrumentation's accumulate, which it replaces; the later ones through our hook):
    the response must come out the same as the instrumentation's own, and a chunk it
    declines must leave the response untouched."""
    from openai.types.chat import ChatCompletionChunk
    from opentelemetry.instrumentation.openai.shared.chat_wrappers import (
        _accumulate_stream_items as accumulate,
    )

    from llmtrace_nb._capture.openai_streams import _add_plain_chunk, _quick_accumulate

    if hasattr(accumulate, "__wrapped__"):  # the session's replacement: the original
        accumulate = accumulate.__wrapped__
    chunks = STREAMS[name]
    theirs: dict[str, Any] = {"choices": [], "model": ""}
    for chunk in chunks:
        accumulate(chunk, theirs)
    ours: dict[str, Any] = {"choices": [], "model": ""}
    taken = []
    for chunk in chunks:
        before = json.dumps(ours, sort_keys=True)
        if _add_plain_chunk(chunk, ours, ChatCompletionChunk):
            taken.append(chunk)
        else:
            assert json.dumps(ours, sort_keys=True) == before
            accumulate(chunk, ours)
    assert ours == theirs
    expected_taken = {"text": 5, "tool calls": 2, "a provider's extra fields": 1,
                      "two choices": 6}[name]
    assert len(taken) == expected_taken
    quick = _quick_accumulate(accumulate, ChatCompletionChunk)
    again: dict[str, Any] = {"choices": [], "model": ""}
    for chunk in chunks:
        quick(chunk, again)
    assert again == theirs
    # a dict is never taken (the instrumentation takes dicts as they are), nor a choice
    # out of order (the instrumentation's own step fails on it, as it would without us)
    assert not _add_plain_chunk(chunks[1].model_dump(), ours, ChatCompletionChunk)
    assert not _add_plain_chunk(_chunk([_delta(5, content="far")]), ours, ChatCompletionChunk)
