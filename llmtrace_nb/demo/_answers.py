"""What the three APIs answer alike: the reply (text or one tool call) and how it is planned,
the route's answer, and the ``DemoServer.answered`` record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._common import (
    JSON,
    _as_dict,
    _as_list,
    _fragments,
    _last_word,
    _snippet,
    _stream_pieces,
    _text_of,
    count_tokens,
)


def _answered_record(endpoint: str, model: str, stream: bool, *, prompt: int, output: int,
                     cache_read: int = 0, cache_write: int = 0, reasoning: int = 0) -> JSON:
    """One entry of ``DemoServer.answered``; ``prompt`` includes the cached tokens."""
    return {
        "endpoint": endpoint,
        "model": model,
        "stream": stream,
        "input_tokens": prompt,
        "output_tokens": output,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
    }


@dataclass(frozen=True)
class _Answer:
    """A route's answer: the JSON body or the stream's frames, and what the log keeps."""

    payload: JSON | Iterator[bytes]
    #: the ``DemoServer.answered`` record, ``None`` for requests that are not logged
    record: JSON | None = None


@dataclass(frozen=True)
class _Reply:
    """What the assistant says: either ``text`` or a single function tool call."""

    text: str | None = None
    tool_name: str = ""
    tool_arguments: str = ""
    tool_call_id: str = ""

    @property
    def finish_reason(self) -> str:
        return "stop" if self.text is not None else "tool_calls"

    def tokens(self) -> int:
        if self.text is not None:
            return count_tokens(self.text)
        return count_tokens(self.tool_name) + count_tokens(self.tool_arguments)

    def message(self) -> JSON:
        if self.text is not None:
            return {"role": "assistant", "content": self.text, "refusal": None, "annotations": []}
        return {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [self._tool_call(self.tool_arguments)],
        }

    def deltas(self) -> list[JSON]:
        """Stream deltas in OpenAI's order: role first, then content or argument pieces."""
        if self.text is not None:
            head: JSON = {"role": "assistant", "content": ""}
            return [head] + [{"content": piece} for piece in _stream_pieces(self.text)]
        head = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"index": 0, **self._tool_call("")}],
        }
        rest = [
            {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}
            for fragment in _fragments(self.tool_arguments)
        ]
        return [head, *rest]

    def _tool_call(self, arguments: str) -> JSON:
        return {
            "id": self.tool_call_id,
            "type": "function",
            "function": {"name": self.tool_name, "arguments": arguments},
        }


def _placeholder(schema: Any, word: str) -> Any:
    """A deterministic value that satisfies a (simple) JSON-schema property."""
    if not isinstance(schema, dict):
        return word
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):  # e.g. ["string", "null"]
        kind = next((k for k in kind if k != "null"), None)
    defaults: dict[str, Any] = {
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": {},
    }
    return defaults.get(kind, word) if isinstance(kind, str) else word


def _tool_arguments(parameters: Any, user_text: str) -> JSON:
    params = _as_dict(parameters)
    properties = _as_dict(params.get("properties"))
    required = [n for n in _as_list(params.get("required")) if isinstance(n, str)]
    names = [*properties, *(n for n in required if n not in properties)]
    word = _last_word(user_text)
    return {name: _placeholder(properties.get(name), word) for name in names}


def _pick_tool(tools: list[JSON], wanted: Any) -> JSON | None:
    """The tool named ``wanted`` if there is one, else the first tool (``None`` if no tools)."""
    named = [t for t in tools if wanted is not None and t.get("name") == wanted]
    chosen = named or tools
    return chosen[0] if chosen else None


def _plan_reply(
    tool_output: str | None, user_text: str, tool: JSON | None, schema_key: str, call_id: str
) -> _Reply:
    """The reply all three APIs share (see "Deterministic replies" in the package docstring).

    ``tool_output`` is the text of a tool result ending the conversation (else ``None``),
    ``tool`` the tool definition to call (else ``None``), its JSON schema under ``schema_key``.
    """
    if tool_output is not None:
        return _Reply(text=f"Tool result received: {_snippet(tool_output)}")
    if tool is None:
        return _Reply(text=f"Demo reply to: {_snippet(user_text)}")
    return _Reply(
        tool_name=str(tool.get("name", "")),
        tool_arguments=json.dumps(_tool_arguments(tool.get(schema_key), user_text)),
        tool_call_id=call_id,
    )


def _last_user_text(messages: list[JSON]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""
