"""Attributes as frameworks and providers really write them, read right span by span.

Attribute sets read off real runs against the demo server (pydantic-ai 2.68, LangChain
with OpenInference 0.1.80 and OpenLLMetry 0.62.4, the Anthropic SDK 2.16, openlit 1.45);
the live versions are in tests/frameworks/.
"""

from __future__ import annotations

import json
import math

import pytest
from genai_prices import Usage, calc_price

from spans import Recorder

LC_TOOL_INPUT = {"input_str": "{'city': 'Paris'}", "tags": [], "metadata": {},
                 "inputs": {"city": "Paris"},
                 "kwargs": {"color": "green", "name": None, "tool_call_id": "call_demo_4"}}
LC_TOOL_MESSAGE = {"lc": 1, "type": "constructor",
                   "id": ["langchain", "schema", "messages", "ToolMessage"],
                   "kwargs": {"content": "Sunny in Paris", "type": "tool", "name": "get_weather",
                              "tool_call_id": "call_demo_4", "status": "success"}}


def test_openllmetry_langchain_tool_span_unwraps_the_callback_payload() -> None:
    rec = Recorder()
    rec.span("execute_tool get_weather", {
        "traceloop.span.kind": "tool", "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.arguments": json.dumps(LC_TOOL_INPUT),
        "gen_ai.tool.call.result": json.dumps({"output": LC_TOOL_MESSAGE,
                                               "kwargs": {"tags": []}})})
    row = rec.frames.spans().iloc[0]
    assert row["kind"] == "tool"
    assert row["input_messages"][0]["tool_calls"] == [
        {"id": "call_demo_4", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert row["output_messages"] == [{"role": "tool", "content": "Sunny in Paris",
                                       "name": "get_weather", "tool_call_id": "call_demo_4"}]


def test_openinference_langchain_tool_gets_its_arguments_from_the_models_call() -> None:
    """OpenInference collapses a one-key argument dict to its value ("Paris")."""
    rec = Recorder()
    rec.span("ChatOpenAI", {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_demo_4",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments":
            '{"city": "Paris"}'})
    rec.frames.spans()  # the model's call in one build, the tool in the next
    rec.span("get_weather", {
        "openinference.span.kind": "TOOL", "tool.name": "get_weather", "input.value": "Paris",
        "output.value": json.dumps({"type": "tool", "data": {
            "content": "Sunny in Paris", "type": "tool", "name": "get_weather",
            "tool_call_id": "call_demo_4", "status": "success"}}),
        "output.mime_type": "application/json"})
    tool = rec.frames.spans().iloc[1]
    assert tool["input_messages"][0]["tool_calls"] == [
        {"id": "call_demo_4", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert tool["output_messages"][0]["content"] == "Sunny in Paris"
    assert tool["output_messages"][0]["tool_call_id"] == "call_demo_4"


def test_a_tool_without_a_known_call_keeps_its_text() -> None:
    rec = Recorder()
    rec.span("get_weather", {"openinference.span.kind": "TOOL", "tool.name": "get_weather",
                             "input.value": "Paris", "output.value": "Sunny in Paris"})
    call = rec.frames.spans().iloc[0]["input_messages"][0]["tool_calls"][0]
    assert call == {"id": None, "name": "get_weather", "arguments": "Paris"}


PYDANTIC_AI_CHAT = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.response.id": "chatcmpl-demo-1",
                    "gen_ai.usage.input_tokens": 30, "gen_ai.usage.output_tokens": 8}


def test_pydantic_ai_time_to_first_chunk_marks_a_streamed_call() -> None:
    rec = Recorder()
    rec.span("chat gpt-4o-mini", {**PYDANTIC_AI_CHAT,
                                  "gen_ai.client.operation.time_to_first_chunk": 0.0357})
    rec.span("chat gpt-4o-mini", PYDANTIC_AI_CHAT)
    streamed, plain = rec.frames.spans().itertuples()
    assert streamed.is_streaming and streamed.ttft_ms == pytest.approx(35.7)
    assert plain.is_streaming is not True and math.isnan(plain.ttft_ms)


OPENLIT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
           "gen_ai.request.model": "gpt-4o-mini",
           "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
           "gen_ai.response.id": "chatcmpl-demo-1", "gen_ai.usage.input_tokens": 10,
           "gen_ai.usage.output_tokens": 10, "gen_ai.usage.cost": 0,
           "gen_ai.server.time_to_first_token": 0.0194}


def test_openlit_ttft_counts_only_for_streamed_calls_and_its_zero_cost_is_no_price() -> None:
    rec = Recorder()
    rec.span("chat gpt-4o-mini", {**OPENLIT, "gen_ai.request.stream": False})
    rec.span("chat gpt-4o-mini", {**OPENLIT, "gen_ai.request.stream": True})
    rec.span("embeddings text-embedding-3-small", {
        "gen_ai.operation.name": "embeddings", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small", "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.cost": 0, "gen_ai.server.time_to_first_token": 0.01})
    plain, streamed, embedding = rec.frames.spans().itertuples()
    assert math.isnan(plain.ttft_ms) and not plain.is_streaming
    assert streamed.ttft_ms == pytest.approx(19.4) and streamed.is_streaming
    assert math.isnan(embedding.ttft_ms)
    expected = float(calc_price(Usage(input_tokens=10, output_tokens=10),
                                model_ref="gpt-4o-mini-2024-07-18",
                                provider_id="openai").total_price)
    assert plain.cost_usd == pytest.approx(expected, rel=1e-12)  # not openlit's 0
    assert embedding.cost_usd > 0


@pytest.mark.parametrize("given", [0, -1.0, float("nan"), "0"])
def test_a_recorded_cost_counts_only_when_positive(given: object) -> None:
    rec = Recorder()
    rec.span("chat", {**OPENLIT, "gen_ai.usage.cost": given})
    row = rec.frames.spans().iloc[0]
    assert row["cost_usd"] > 0
    rec = Recorder()
    rec.span("chat", {**OPENLIT, "gen_ai.usage.cost": 0.5})
    assert rec.frames.spans().iloc[0]["cost_usd"] == 0.5


def test_anthropic_sdk_span_reads_cache_writes_and_stop_reason() -> None:
    rec = Recorder()
    rec.span("anthropic.messages.create", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-3-5-haiku-latest",
        "gen_ai.response.model": "claude-3-5-haiku-20241022", "gen_ai.response.id": "msg_1",
        "gen_ai.usage.input_tokens": 22, "gen_ai.usage.output_tokens": 6,
        "gen_ai.usage.cache_read.input_tokens": 11,
        "gen_ai.usage.cache_write.input_tokens": 5,
        "anthropic.message.stop_reason": "end_turn"})
    row = rec.frames.spans().iloc[0]
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (11, 5)
    assert row["finish_reasons"] == "end_turn"
    expected = float(calc_price(Usage(input_tokens=22, cache_read_tokens=11,
                                      cache_write_tokens=5, output_tokens=6),
                                model_ref="claude-3-5-haiku-20241022",
                                provider_id="anthropic").total_price)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)


def test_openinference_prompt_spans_are_chain_steps() -> None:
    rec = Recorder()
    rec.span("ChatPromptTemplate", {"openinference.span.kind": "PROMPT"})
    assert rec.frames.spans().iloc[0]["kind"] == "chain"
