"""Every common GenAI span dialect, from spans shaped exactly as each instrumentation emits.

The attribute sets below were read off real spans (OpenInference's and the contrib
OpenAI instrumentations against the demo server; see test_instrumentations.py for the
live versions) or copied from the instrumentations' documented output.
"""

from __future__ import annotations

import json
import math

import pytest
from genai_prices import Usage, calc_price

from llmtrace_nb._read import semconv
from llmtrace_nb._shape import frames

from spans import Recorder, openai_chat


def one(attrs: dict, name: str = "span", events: list[tuple[str, int]] = (),
        error: str | None = None):
    rec = Recorder()
    rec.span(name, attrs, events=events, error=error)
    return rec.frames.spans().iloc[0]


def price(model: str, inp: int, out: int, cached: int = 0) -> float:
    return float(calc_price(Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out),
                            model_ref=model, provider_id="openai").total_price)


OPENINFERENCE_CHAT = {
    "llm.system": "openai",
    "input.value": json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [
        {"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}]}),
    "input.mime_type": "application/json",
    "output.value": '{"id": "chatcmpl-1"}',
    "output.mime_type": "application/json",
    "llm.invocation_parameters": json.dumps({"model": "gpt-4o-mini", "stream": True}),
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "Be brief",
    "llm.input_messages.1.message.role": "user",
    "llm.input_messages.1.message.content": "Hi",
    "llm.model_name": "gpt-4o-mini-2024-07-18",
    "llm.token_count.total": 22,
    "llm.token_count.prompt": 14,
    "llm.token_count.completion": 8,
    "llm.token_count.prompt_details.cache_read": 7,
    "llm.token_count.completion_details.reasoning": 0,
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments":
        '{"city": "Paris"}',
    "llm.finish_reason": "tool_calls",
    "openinference.span.kind": "LLM",
}


def test_openinference_llm() -> None:
    row = one(OPENINFERENCE_CHAT, "ChatCompletion",
              events=[("First Token Stream Event", 120_000_000)])
    assert row["kind"] == "llm" and row["provider"] == "openai"
    assert row["request_model"] == "gpt-4o-mini"
    assert row["response_model"] == row["model"] == "gpt-4o-mini-2024-07-18"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (14, 8, 22)
    assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (7, 0)
    assert row["is_streaming"] and row["ttft_ms"] == pytest.approx(120.0)
    assert row["finish_reasons"] == "tool_calls"
    assert row["input_messages"] == [{"role": "system", "content": "Be brief"},
                                     {"role": "user", "content": "Hi"}]
    assert row["output_messages"] == [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]}]
    assert row["cost_usd"] == pytest.approx(price("gpt-4o-mini", 14, 8, 7), rel=1e-12)


def test_openinference_cost_given_wins() -> None:
    row = one(OPENINFERENCE_CHAT | {"llm.cost.total": 0.5}, "ChatCompletion")
    assert row["cost_usd"] == 0.5
    row = one(OPENINFERENCE_CHAT | {"llm.cost.prompt": 0.25, "llm.cost.completion": 0.125})
    assert row["cost_usd"] == 0.375


def test_openinference_embedding_tool_retriever_agent_chain() -> None:
    emb = one({"llm.system": "openai", "embedding.model_name": "text-embedding-3-small",
               "embedding.embeddings.0.embedding.text": "hello world",
               "embedding.embeddings.0.embedding.vector": (0.1, 0.2),
               "llm.token_count.prompt": 2, "llm.token_count.total": 2,
               "openinference.span.kind": "EMBEDDING"}, "CreateEmbeddings")
    assert emb["kind"] == "embedding" and emb["model"] == "text-embedding-3-small"
    assert emb["input_messages"] == [{"role": "user", "content": "hello world"}]
    assert emb["cost_usd"] == pytest.approx(price("text-embedding-3-small", 2, 0))
    tool = one({"openinference.span.kind": "TOOL", "tool.name": "search",
                "input.value": '{"q": "paris"}', "output.value": "3 results"}, "search")
    assert tool["kind"] == "tool"
    assert tool["input_messages"] == [{"role": "assistant", "content": None, "tool_calls": [
        {"id": None, "name": "search", "arguments": {"q": "paris"}}]}]
    assert tool["output_messages"] == [{"role": "tool", "content": "3 results",
                                        "name": "search"}]
    assert one({"openinference.span.kind": "RETRIEVER"})["kind"] == "retrieval"
    assert one({"openinference.span.kind": "RERANKER"})["kind"] == "retrieval"
    assert one({"openinference.span.kind": "AGENT"})["kind"] == "agent"
    chain = one({"openinference.span.kind": "CHAIN", "input.value": "question?",
                 "output.value": "answer."})
    assert chain["kind"] == "chain"
    assert chain["input_messages"] == [{"role": "user", "content": "question?"}]
    assert chain["output_messages"] == [{"role": "assistant", "content": "answer."}]


def test_openinference_error_type_from_exception_event() -> None:
    rec = Recorder()
    span = rec.tracer.start_span("ChatCompletion", attributes={
        "openinference.span.kind": "LLM", "llm.system": "openai"})
    span.record_exception(RuntimeError("x"), attributes={
        "exception.type": "openai.InternalServerError"})
    from opentelemetry.trace import Status, StatusCode
    span.set_status(Status(StatusCode.ERROR))
    span.end()
    row = rec.frames.spans().iloc[0]
    assert row["status"] == "error" and row["error_type"] == "InternalServerError"


def test_deprecated_genai_keys_and_message_events() -> None:
    rec = Recorder()
    span = rec.tracer.start_span("chat gpt-4o", attributes={
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 120,
        "gen_ai.usage.completion_tokens": 30,
        "gen_ai.response.finish_reasons": ["stop"],
    })
    span.add_event("gen_ai.system.message", {"gen_ai.system": "openai",
                                             "content": "You are terse."})
    span.add_event("gen_ai.user.message", {"gen_ai.system": "openai", "content": "Hi"})
    span.add_event("gen_ai.assistant.message", {"gen_ai.system": "openai", "tool_calls":
                   json.dumps([{"id": "c1", "type": "function",
                                "function": {"name": "f", "arguments": "{}"}}])})
    span.add_event("gen_ai.tool.message", {"gen_ai.system": "openai", "content": "42",
                                           "id": "c1"})
    span.add_event("gen_ai.choice", {"gen_ai.system": "openai", "index": 0,
                                     "finish_reason": "stop",
                                     "message": json.dumps({"role": "assistant",
                                                            "content": "Hello!"})})
    span.end()
    row = rec.frames.spans().iloc[0]
    assert row["provider"] == "openai" and row["kind"] == "llm"
    assert (row["input_tokens"], row["output_tokens"]) == (120, 30)
    assert row["cost_usd"] == pytest.approx(price("gpt-4o-2024-08-06", 120, 30))
    assert [m["role"] for m in row["input_messages"]] == ["system", "user", "assistant", "tool"]
    assert row["input_messages"][2]["tool_calls"] == [{"id": "c1", "name": "f",
                                                       "arguments": "{}"}]
    assert row["input_messages"][3] == {"role": "tool", "content": "42", "tool_call_id": "c1"}
    assert row["output_messages"] == [{"role": "assistant", "content": "Hello!",
                                       "finish_reason": "stop"}]


OPENLLMETRY_OLD = {
    "llm.request.type": "chat",
    "gen_ai.system": "OpenAI",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "llm.is_streaming": True,
    "gen_ai.prompt.0.role": "user",
    "gen_ai.prompt.0.content": "What's the weather?",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.finish_reason": "tool_calls",
    "gen_ai.completion.0.tool_calls.0.id": "call_9",
    "gen_ai.completion.0.tool_calls.0.name": "get_weather",
    "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Oslo"}',
    "gen_ai.usage.prompt_tokens": 50,
    "gen_ai.usage.completion_tokens": 12,
    "llm.usage.total_tokens": 62,
    "gen_ai.usage.cache_read_input_tokens": 32,
}


def test_openllmetry_054() -> None:
    row = one(OPENLLMETRY_OLD, "openai.chat",
              events=[("gen_ai.content.completion.chunk", 80_000_000)])
    assert row["kind"] == "llm" and row["provider"] == "OpenAI"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (50, 12, 62)
    assert row["cache_read_tokens"] == 32 and row["is_streaming"]
    assert row["ttft_ms"] == pytest.approx(80.0)
    assert row["finish_reasons"] == "tool_calls"
    assert row["input_messages"] == [{"role": "user", "content": "What's the weather?"}]
    assert row["output_messages"] == [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "name": "get_weather", "arguments": '{"city": "Oslo"}'}],
        "finish_reason": "tool_calls"}]
    assert row["cost_usd"] == pytest.approx(price("gpt-4o-mini", 50, 12, 32), rel=1e-12)


def test_openllmetry_workflow_task_and_tool_kinds() -> None:
    assert one({"traceloop.span.kind": "workflow"})["kind"] == "chain"
    assert one({"traceloop.span.kind": "task"})["kind"] == "chain"
    assert one({"traceloop.span.kind": "agent"})["kind"] == "agent"
    tool = one({"traceloop.span.kind": "tool", "traceloop.entity.name": "lookup",
                "traceloop.entity.input": '{"args": [1], "kwargs": {}}',
                "traceloop.entity.output": '"found"'})
    assert tool["kind"] == "tool"
    assert tool["input_messages"][0]["tool_calls"][0]["name"] == "lookup"
    assert tool["output_messages"][0]["content"] == '"found"'
    emb = one({"llm.request.type": "embedding", "gen_ai.system": "OpenAI",
               "gen_ai.request.model": "text-embedding-3-small",
               "gen_ai.usage.prompt_tokens": 5})
    assert emb["kind"] == "embedding" and emb["cost_usd"] > 0


def test_contrib_instrumentation() -> None:
    """opentelemetry-instrumentation-openai-v2: `chat MODEL` spans, content on events."""
    rec = Recorder()
    span = rec.tracer.start_span("chat gpt-4o-mini", attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai", "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.response.id": "x",
        "gen_ai.usage.input_tokens": 14, "gen_ai.usage.output_tokens": 8,
    })
    span.add_event("gen_ai.client.inference.operation.details", {
        "gen_ai.input.messages": json.dumps([
            {"role": "user", "parts": [{"content": "Hello", "type": "text"}]}]),
        "gen_ai.output.messages": json.dumps([
            {"role": "assistant", "parts": [{"content": "Hi!", "type": "text"}],
             "finish_reason": "stop"}]),
    })
    span.end()
    row = rec.frames.spans().iloc[0]
    assert row["kind"] == "llm" and row["model"] == "gpt-4o-mini-2024-07-18"
    assert row["input_messages"] == [{"role": "user", "content": "Hello"}]
    assert row["output_messages"][0]["content"] == "Hi!"
    assert row["cost_usd"] == pytest.approx(price("gpt-4o-mini", 14, 8), rel=1e-12)
    err = one({"gen_ai.operation.name": "chat", "gen_ai.request.model": "x",
               "error.type": "<class 'openai.InternalServerError'>"}, error=None)
    assert err["error_type"] == "InternalServerError"


@pytest.mark.parametrize(("attrs", "kind"), [
    ({"gen_ai.operation.name": "chat"}, "llm"),
    ({"gen_ai.operation.name": "text_completion"}, "llm"),
    ({"gen_ai.operation.name": "generate_content"}, "llm"),
    ({"gen_ai.operation.name": "embeddings"}, "embedding"),
    ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}, "tool"),
    ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
    ({"gen_ai.operation.name": "create_agent"}, "agent"),
    ({"llmtrace.kind": "cell"}, "cell"),
    ({"http.method": "GET"}, "other"),
    ({"gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 1}, "llm"),
])
def test_kind_table(attrs: dict, kind: str) -> None:
    assert semconv.span_kind(attrs, semconv.scalar_fields(attrs)) == kind


def test_genai_execute_tool_span_messages() -> None:
    row = one({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather",
               "gen_ai.tool.call.id": "call_1", "gen_ai.tool.call.arguments": '{"city": "Rome"}',
               "gen_ai.tool.call.result": '{"temp": 21}'}, "execute_tool get_weather")
    assert row["input_messages"] == [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Rome"}}]}]
    assert row["output_messages"] == [{"role": "tool", "content": '{"temp": 21}',
                                       "name": "get_weather", "tool_call_id": "call_1"}]
    assert math.isnan(row["cost_usd"])


def test_mixed_dialects_make_one_coherent_frame() -> None:
    rec = Recorder()
    rec.span("ChatCompletion", OPENINFERENCE_CHAT)
    rec.span("openai.chat", OPENLLMETRY_OLD)
    rec.span("openai.chat", openai_chat("gpt-4o", inp=10, out=5))
    rec.span("search", {"llmtrace.kind": "tool", "gen_ai.tool.name": "search"})
    calls = frames.llm_calls(rec.frames.spans())
    assert len(calls) == 3 and calls["cost_usd"].notna().all()
    summary = frames.summary(calls, by="provider")
    assert summary["calls"].sum() == 3
    assert list(rec.frames.spans()["kind"]) == ["llm", "llm", "llm", "tool"]
