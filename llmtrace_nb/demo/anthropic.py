"""Anthropic's Messages API (``POST /v1/messages``), with Anthropic's usage shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._answers import _Answer, _answered_record, _last_user_text, _pick_tool, _plan_reply, _Reply
from ._common import (
    _TOKEN_RE,
    CACHE_MARKER,
    JSON,
    TOKENS_PER_MESSAGE,
    ApiError,
    _as_dict,
    _as_list,
    _fragments,
    _require,
    _sse,
    _stream_pieces,
    _text_of,
    count_tokens,
    response_model,
)

CACHE_WRITE_MARKER = "[cache-write]"


def _claude_block_text(block: JSON) -> str:
    """What a content block adds to the prompt: its text, or a tool result's content."""
    if block.get("type") == "tool_result":
        return _text_of(block.get("content"))
    text = block.get("text") if block.get("type") == "text" else None
    return text if isinstance(text, str) else ""


def _claude_text(content: Any) -> str:
    """Plain text of a message's ``content``: a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    parts = [_claude_block_text(b) for b in map(_as_dict, _as_list(content))]
    return " ".join(p for p in parts if p)


def _claude_messages(body: JSON) -> list[JSON]:
    messages = _as_list(body.get("messages"))
    valid = all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages)
    _require(
        bool(messages) and valid,
        "must be a non-empty array of user and assistant messages.",
        "messages",
    )
    return messages


def _claude_system(body: JSON) -> str | None:
    """The text of ``system`` (a string or a list of text blocks), ``None`` if absent."""
    system = body.get("system")
    if system is None:
        return None
    _require(
        isinstance(system, (str, list)),
        "must be a string or an array of text blocks.",
        "system",
    )
    return _text_of(system)


def _claude_max_tokens(body: JSON) -> int:
    value = body.get("max_tokens")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ApiError(400, "must be a positive integer (the field is required).", param="max_tokens")


def _select_claude_tool(tools: Any, tool_choice: Any) -> JSON | None:
    """The client tool to call; server tools (a ``type`` other than "custom") are skipped."""
    choice = _as_dict(tool_choice)
    if choice.get("type") == "none":
        return None
    client_tools = [
        t for t in map(_as_dict, _as_list(tools)) if t.get("type", "custom") == "custom"
    ]
    return _pick_tool(client_tools, choice.get("name") if choice.get("type") == "tool" else None)


def _claude_tool_output(message: JSON) -> str | None:
    """The content of the last ``tool_result`` block of a user message, if it has one."""
    if message.get("role") != "user":
        return None
    blocks = map(_as_dict, _as_list(message.get("content")))
    results = [b for b in blocks if b.get("type") == "tool_result"]
    return _text_of(results[-1].get("content")) if results else None


def _first_tokens(text: str, limit: int) -> str:
    """``text`` cut after its first ``limit`` demo tokens (see :func:`count_tokens`)."""
    tokens = list(_TOKEN_RE.finditer(text))
    return text[: tokens[limit - 1].end()] if len(tokens) > limit else text


@dataclass(frozen=True)
class _ClaudeUsage:
    """Anthropic usage: ``input`` excludes the cache writes and reads, unlike OpenAI's."""

    input: int
    cache_write: int
    cache_read: int
    output: int

    @classmethod
    def compute(cls, prompt: int, prompt_text: str, output: int) -> _ClaudeUsage:
        # Documented in the package docstring so tests can predict the split.
        read = prompt // 2 if CACHE_MARKER in prompt_text else 0
        write = (prompt - read) // 2 if CACHE_WRITE_MARKER in prompt_text else 0
        return cls(prompt - read - write, write, read, output)

    def answered(self, model: str, stream: bool) -> JSON:
        """The ``DemoServer.answered`` record: input counted with the cache, as OpenAI does."""
        return _answered_record("messages", model, stream,
                                prompt=self.input + self.cache_read + self.cache_write,
                                output=self.output, cache_read=self.cache_read,
                                cache_write=self.cache_write)

    def as_delta(self) -> JSON:
        """The cumulative counts a ``message_delta`` event carries."""
        return {
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": self.output,
        }

    def as_message(self, output: int | None = None) -> JSON:
        return {
            **self.as_delta(),
            "output_tokens": self.output if output is None else output,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write,
                "ephemeral_1h_input_tokens": 0,
            },
            "service_tier": "standard",
        }


@dataclass(frozen=True)
class _ClaudeCall:
    """A validated Anthropic Messages request and the pieces of its answer."""

    id: str
    model: str
    reply: _Reply
    stop_reason: str
    usage: _ClaudeUsage

    @classmethod
    def from_body(cls, body: JSON, request_no: int) -> _ClaudeCall:
        messages = _claude_messages(body)
        max_tokens = _claude_max_tokens(body)
        system = _claude_system(body)
        texts = [_claude_text(m.get("content")) for m in messages]
        if system is not None:
            texts.insert(0, system)
        prompt = sum(TOKENS_PER_MESSAGE + count_tokens(t) for t in texts)
        tool = _select_claude_tool(body.get("tools"), body.get("tool_choice"))
        reply = _plan_reply(
            _claude_tool_output(messages[-1]),
            _last_user_text(messages),
            tool,
            "input_schema",
            f"toolu_demo_{request_no}",
        )
        stop_reason = "end_turn" if reply.text is not None else "tool_use"
        if reply.text is not None and count_tokens(reply.text) > max_tokens:
            reply, stop_reason = _Reply(text=_first_tokens(reply.text, max_tokens)), "max_tokens"
        return cls(
            id=f"msg_demo_{request_no}",
            model=response_model(body["model"]),
            reply=reply,
            stop_reason=stop_reason,
            usage=_ClaudeUsage.compute(prompt, "\n".join(texts), reply.tokens()),
        )

    def block(self, *, done: bool) -> JSON:
        """The content block: complete, or empty as ``content_block_start`` announces it."""
        reply = self.reply
        if reply.text is not None:
            return {"type": "text", "text": reply.text if done else ""}
        return {
            "type": "tool_use",
            "id": reply.tool_call_id,
            "name": reply.tool_name,
            "input": json.loads(reply.tool_arguments) if done else {},
        }

    def message(self, *, done: bool) -> JSON:
        """The Message; as ``message_start`` sends it (no content, 1 output token) until done."""
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [self.block(done=True)] if done else [],
            "stop_reason": self.stop_reason if done else None,
            "stop_sequence": None,
            "usage": self.usage.as_message() if done else self.usage.as_message(output=1),
        }

    def deltas(self) -> list[JSON]:
        if self.reply.text is not None:
            return [{"type": "text_delta", "text": p} for p in _stream_pieces(self.reply.text)]
        return [
            {"type": "input_json_delta", "partial_json": fragment}
            for fragment in _fragments(self.reply.tool_arguments)
        ]

    def events(self) -> Iterator[JSON]:
        """The Messages streaming event sequence, in Anthropic's order."""
        yield {"type": "message_start", "message": self.message(done=False)}
        yield {"type": "content_block_start", "index": 0, "content_block": self.block(done=False)}
        yield {"type": "ping"}
        for delta in self.deltas():
            yield {"type": "content_block_delta", "index": 0, "delta": delta}
        yield {"type": "content_block_stop", "index": 0}
        yield {
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": self.usage.as_delta(),
        }
        yield {"type": "message_stop"}


def _anthropic_messages(body: JSON, request_no: int) -> _Answer:
    call = _ClaudeCall.from_body(body, request_no)
    stream = body.get("stream") is True
    record = call.usage.answered(call.model, stream)
    return _Answer(_anthropic_stream(call) if stream else call.message(done=True), record)


def _anthropic_stream(call: _ClaudeCall) -> Iterator[bytes]:
    # The anthropic client skips SSE frames without an event name, so every frame has one.
    for event in call.events():
        yield _sse(event, event=event["type"])
