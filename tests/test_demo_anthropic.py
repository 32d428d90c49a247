"""The demo server's Anthropic Messages API, exercised through the real ``anthropic`` client."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from llmtrace_nb.demo import DemoServer, count_tokens

# the shared module server and its reset, the raw request helper and the token rule
from test_demo import WEATHER_ARGS, _reset, prompt_tokens, raw_request, server

__all__ = ["_reset", "server"]  # fixtures, used by name

MODEL = "claude-3-5-haiku-latest"
SNAPSHOT = "claude-3-5-haiku-20241022"
HELLO: list[Any] = [{"role": "user", "content": "Hello, world!"}]
REPLY = "Demo reply to: Hello, world!"
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "detailed": {"type": "boolean"},
        },
        "required": ["city"],
    },
}
TIME_TOOL: Any = {
    "name": "get_time",
    "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}},
}
WEATHER_QUESTION: list[Any] = [{"role": "user", "content": "What is the weather in Paris"}]


def make_client(srv: DemoServer, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="demo", **kwargs)


def raw_post(url: str, payload: Any) -> tuple[int, dict[str, str], Any]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return raw_request(url, "POST", data)


@pytest.fixture(scope="module")
def client(server: DemoServer) -> Iterator[anthropic.Anthropic]:
    # Strict validation rejects any payload that does not match the SDK's pydantic models.
    with make_client(server, _strict_response_validation=True) as c:
        yield c


# --------------------------------------------------------------------------- plain messages


def test_anthropic_base_url(server: DemoServer) -> None:
    assert server.anthropic_base_url == f"http://127.0.0.1:{server.port}"
    assert server.base_url == server.anthropic_base_url + "/v1"


def test_message_plain(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_demo_")
    assert message.model == SNAPSHOT
    assert len(message.content) == 1
    block = message.content[0]
    assert block.type == "text" and block.text == REPLY
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message._request_id is not None and message._request_id.startswith("req_demo_")
    usage = message.usage
    assert usage.input_tokens == prompt_tokens("Hello, world!") == 8
    assert usage.output_tokens == count_tokens(REPLY) == 8
    assert usage.cache_creation_input_tokens == 0
    assert usage.cache_read_input_tokens == 0


@pytest.mark.parametrize(
    ("requested", "reported"),
    [("claude-sonnet-4-0", "claude-sonnet-4-20250514"), ("my-claude", "my-claude")],
)
def test_model_mapping(client: anthropic.Anthropic, requested: str, reported: str) -> None:
    message = client.messages.create(model=requested, max_tokens=100, messages=HELLO)
    assert message.model == reported


def test_system_and_content_blocks(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": [{"type": "text", "text": "First answer"}]},
        {
            "role": "user",
            "content": [{"type": "text", "text": "parts"}, {"type": "text", "text": "work"}],
        },
    ]
    message = client.messages.create(
        model=MODEL, max_tokens=100, system="Be terse.", messages=messages
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Demo reply to: parts work"
    assert message.usage.input_tokens == prompt_tokens(
        "Be terse.", "First question", "First answer", "parts work"
    )


def test_max_tokens_cuts_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=3, messages=HELLO)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Demo reply to"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3


# --------------------------------------------------------------------------- prompt caching


def test_cache_write_marker(client: anthropic.Anthropic) -> None:
    system: Any = [
        {
            "type": "text",
            "text": "Long shared preamble [cache-write]",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    message = client.messages.create(model=MODEL, max_tokens=100, system=system, messages=HELLO)
    total = prompt_tokens("Long shared preamble [cache-write]", "Hello, world!")
    assert total == 20
    usage = message.usage
    assert usage.cache_creation_input_tokens == total // 2 == 10
    assert usage.cache_read_input_tokens == 0
    assert usage.input_tokens == total - 10  # Anthropic's input_tokens excludes the cache
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 10
    assert usage.cache_creation.ephemeral_1h_input_tokens == 0


def test_cache_read_marker(client: anthropic.Anthropic) -> None:
    system: Any = [{"type": "text", "text": "Long shared preamble [cached]"}]
    message = client.messages.create(model=MODEL, max_tokens=100, system=system, messages=HELLO)
    total = prompt_tokens("Long shared preamble [cached]", "Hello, world!")
    assert total == 18
    usage = message.usage
    assert usage.cache_read_input_tokens == 9
    assert usage.cache_creation_input_tokens == 0
    assert usage.input_tokens == 9


def test_both_cache_markers(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "[cached] preamble, then [cache-write] more"}
    ]
    message = client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    total = prompt_tokens("[cached] preamble, then [cache-write] more")
    assert total == 16
    usage = message.usage
    assert usage.cache_read_input_tokens == total // 2 == 8
    assert usage.cache_creation_input_tokens == (16 - 8) // 2 == 4
    assert usage.input_tokens == 4
    assert usage.input_tokens + 8 + 4 == total


# --------------------------------------------------------------------------- streaming


def test_stream_raw_events(client: anthropic.Anthropic) -> None:
    expected = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    events = list(client.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[2:-3]) == {"content_block_delta"}
    start = events[0]
    assert start.type == "message_start"
    assert start.message.model == SNAPSHOT
    assert start.message.content == [] and start.message.stop_reason is None
    assert start.message.usage.input_tokens == 8
    assert start.message.usage.output_tokens == 1  # like the real API: the total comes later
    pieces = [
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert len(pieces) >= 3
    assert "".join(pieces) == REPLY
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == expected.usage.output_tokens == 8
    assert delta.usage.input_tokens == 8


def test_stream_helper(client: anthropic.Anthropic) -> None:
    expected = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) >= 3 and "".join(pieces) == REPLY
    assert final.content[0].type == "text" and final.content[0].text == REPLY
    assert final.stop_reason == "end_turn"
    assert final.model == SNAPSHOT
    assert final.usage.model_dump() == expected.usage.model_dump()


def test_stream_helper_keeps_cache_usage(client: anthropic.Anthropic) -> None:
    system: Any = [
        {"type": "text", "text": "Preamble [cached]", "cache_control": {"type": "ephemeral"}}
    ]
    expected = client.messages.create(model=MODEL, max_tokens=100, system=system, messages=HELLO)
    with client.messages.stream(
        model=MODEL, max_tokens=100, system=system, messages=HELLO
    ) as stream:
        final = stream.get_final_message()
    assert expected.usage.cache_read_input_tokens
    assert final.usage.model_dump() == expected.usage.model_dump()


@pytest.mark.asyncio
async def test_async_stream(server: DemoServer) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=server.anthropic_base_url, api_key="demo", max_retries=0
    ) as aclient:
        message = await aclient.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
        assert message.content[0].type == "text" and message.content[0].text == REPLY
        async with aclient.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
            text = await stream.get_final_text()
        assert text == REPLY


# --------------------------------------------------------------------------- tools


def test_tool_use(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=100, messages=WEATHER_QUESTION, tools=[WEATHER_TOOL, TIME_TOOL]
    )
    assert message.stop_reason == "tool_use"
    assert len(message.content) == 1
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_demo_")
    assert block.name == "get_weather"
    assert block.input == WEATHER_ARGS
    expected = count_tokens("get_weather") + count_tokens(json.dumps(WEATHER_ARGS))
    assert message.usage.output_tokens == expected


def test_tool_round_trip(client: anthropic.Anthropic) -> None:
    first = client.messages.create(
        model=MODEL, max_tokens=100, messages=WEATHER_QUESTION, tools=[WEATHER_TOOL]
    )
    block = first.content[0]
    assert block.type == "tool_use"
    messages: list[Any] = [
        *WEATHER_QUESTION,
        first.to_param(),
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": block.id, "content": "18C and sunny"}
            ],
        },
    ]
    second = client.messages.create(
        model=MODEL, max_tokens=100, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    assert second.content[0].text == "Tool result received: 18C and sunny"
    # tool_use blocks count nothing; a tool_result counts its content.
    assert second.usage.input_tokens == prompt_tokens(
        "What is the weather in Paris", "", "18C and sunny"
    )


def test_tool_result_with_block_content(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [
        *WEATHER_QUESTION,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "Rainy"}],
                }
            ],
        },
    ]
    message = client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Tool result received: Rainy"


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ({"type": "auto"}, "get_weather"),
        ({"type": "any"}, "get_weather"),
        ({"type": "tool", "name": "get_time"}, "get_time"),
        ({"type": "none"}, None),
    ],
)
def test_tool_choice(client: anthropic.Anthropic, tool_choice: Any, expected: str | None) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice=tool_choice,
    )
    block = message.content[0]
    if expected is None:
        assert block.type == "text" and block.text == "Demo reply to: What is the weather in Paris"
        assert message.stop_reason == "end_turn"
    else:
        assert block.type == "tool_use" and block.name == expected
        assert message.stop_reason == "tool_use"


def test_server_tools_are_not_called(client: anthropic.Anthropic) -> None:
    web_search: Any = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    message = client.messages.create(
        model=MODEL, max_tokens=100, messages=WEATHER_QUESTION, tools=[web_search, TIME_TOOL]
    )
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_time"
    assert block.input == {"zone": "Paris"}


def test_tool_use_stream(client: anthropic.Anthropic) -> None:
    events = list(
        client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=WEATHER_QUESTION,
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    start = events[1]
    assert start.type == "content_block_start"
    assert start.content_block.type == "tool_use"
    assert start.content_block.name == "get_weather" and start.content_block.input == {}
    fragments = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(fragments) >= 2
    assert json.loads("".join(fragments)) == WEATHER_ARGS
    delta = events[-2]
    assert delta.type == "message_delta" and delta.delta.stop_reason == "tool_use"


def test_tool_use_stream_helper(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=WEATHER_QUESTION, tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_message()
    block = final.content[0]
    assert block.type == "tool_use" and block.input == WEATHER_ARGS
    assert final.stop_reason == "tool_use"


# --------------------------------------------------------------------------- errors


def test_injected_errors_use_anthropic_shape(
    server: DemoServer, client: anthropic.Anthropic
) -> None:
    server.fail_next(500)
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert info.value.status_code == 500
    assert isinstance(info.value.body, dict)
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "api_error"
    assert info.value.request_id is not None
    # Only one failure was queued: the next call succeeds.
    assert client.messages.create(model=MODEL, max_tokens=100, messages=HELLO).content


def test_overloaded_529(server: DemoServer, client: anthropic.Anthropic) -> None:
    server.fail_next(529)
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("model", "error", "error_type"),
    [
        ("demo-error-500", anthropic.InternalServerError, "api_error"),
        ("demo-error-429", anthropic.RateLimitError, "rate_limit_error"),
    ],
)
def test_magic_error_models(
    client: anthropic.Anthropic, model: str, error: type[anthropic.APIStatusError], error_type: str
) -> None:
    with pytest.raises(error) as info:
        client.messages.create(model=model, max_tokens=100, messages=HELLO)
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == error_type
    with pytest.raises(error):
        client.messages.create(model=model, max_tokens=100, messages=HELLO, stream=True)


def test_429_is_retried_until_success(server: DemoServer) -> None:
    server.fail_next(429, retry_after=0.01)
    before, started = server.requests, time.monotonic()
    with make_client(server, max_retries=2) as c:
        message = c.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert message.content[0].type == "text" and message.content[0].text == REPLY
    assert server.requests - before == 2
    assert time.monotonic() - started < 1.0


def test_timeout_on_slow_model(client: anthropic.Anthropic) -> None:
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(model="demo-slow", max_tokens=100, messages=HELLO, timeout=0.2)
    assert time.monotonic() - started < 1.5


def test_invalid_requests_are_400(server: DemoServer, client: anthropic.Anthropic) -> None:
    url = server.anthropic_base_url + "/v1/messages"
    status, headers, body = raw_post(url, {"model": MODEL, "messages": HELLO})
    assert status == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("max_tokens:")
    assert re.fullmatch(r"req_demo_\d+", body["request_id"])
    assert {k.lower(): v for k, v in headers.items()}["request-id"] == body["request_id"]
    status, _, body = raw_post(url, b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=100, messages=[])
    system_role: list[Any] = [{"role": "system", "content": "x"}]  # not a Messages role
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=100, messages=system_role)


def test_unknown_anthropic_route_is_404(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert isinstance(info.value.body, dict)
    assert info.value.body["error"]["type"] == "not_found_error"
