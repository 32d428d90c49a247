"""A local, deterministic, OpenAI- and Anthropic-compatible HTTP server for demos and tests.

Notebooks, the test suite and ``make demo`` point the real ``openai`` (or ``anthropic``) client
at this server so every code path (plain calls, streaming, tool calls, retries, timeouts) can be
exercised with no API key and no network::

    from llmtrace_nb.demo import DemoServer

    with DemoServer() as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="sk-demo")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        claude = anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="demo")
        claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=100, messages=[...])

``srv.base_url`` is ``http://127.0.0.1:PORT/v1``; ``srv.anthropic_base_url`` is
``http://127.0.0.1:PORT`` (the anthropic client appends ``/v1/messages`` itself).
From a shell, ``python -m llmtrace_nb.demo [--port N] [--latency S] [--chunk-delay S]``
prints the (OpenAI) base URL as its first line of stdout and serves until Ctrl-C / SIGTERM.

Only the standard library is used. The server binds to loopback only (it checks no API key;
any ``Authorization`` or ``x-api-key`` header is accepted and never logged or echoed) and prints
no access log. Sockets use ``TCP_NODELAY``, and a small response's headers and body (or a
stream's headers and first frame) leave in one write, so a call costs about a millisecond
instead of waiting ~40 ms for the client's delayed ACK.

Endpoints (under ``/v1``)
    ``POST /chat/completions`` (``n``, ``stream``, ``stream_options.include_usage``, ``tools``),
    ``POST /embeddings`` (``encoding_format`` float or base64, ``dimensions``),
    ``POST /responses`` (``instructions``, ``stream``, function ``tools``), ``GET /models``,
    and Anthropic's ``POST /messages`` (``max_tokens``, ``system``, ``tools``, ``stream``).
    Anything else is a 404; a body that is not a JSON object, or lacks ``model``, is a 400.
    Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, except under
    ``/v1/messages``, where they use Anthropic's: ``{"type": "error", "error": {"type",
    "message"}, "request_id"}`` (types ``invalid_request_error``, ``not_found_error``,
    ``rate_limit_error``, ``api_error``, ``overloaded_error`` for 529, ...). The request id is
    sent as ``x-request-id`` (OpenAI routes) or ``request-id`` (Anthropic).

Deterministic replies
    Chat, Responses and Messages reply
    ``"Demo reply to: <first 60 chars of the last user message>"``. If the conversation ends
    with a tool result (a ``tool`` message, a ``function_call_output`` item, or a user message
    with a ``tool_result`` block) the reply is
    ``"Tool result received: <first 60 chars of the tool output>"``. If the request has
    ``tools`` (and ``tool_choice`` is not ``"none"`` / ``{"type": "none"}``) the reply is instead
    one call to the first function tool (or the one named by ``tool_choice``), with arguments
    built from its JSON schema (``parameters``; Anthropic's ``input_schema``): strings get the
    last word of the last user message, enums their first value, numbers ``1``, booleans
    ``true``, arrays ``[]`` and objects ``{}``. ``"auto"``, ``"required"`` and Anthropic's
    ``"auto"`` / ``"any"`` all call the tool. The call is a chat ``tool_calls`` entry
    (``call_demo_N``), a Responses ``function_call`` output item (id ``fc_demo_N``, call_id
    ``call_demo_N``) or an Anthropic ``tool_use`` block (``toolu_demo_N``); ``N`` is the
    server's request counter. Anthropic server tools (a ``type`` other than ``"custom"``) are
    never called. Embeddings are 8 floats (or ``dimensions``), an L2-normalised hash of each
    input.

Token accounting (see :func:`count_tokens`)
    ``count_tokens(text)`` counts words (runs of ``\\w``) plus every other non-space character.
    Prompt tokens = sum over messages (and Responses ``instructions``) of
    ``4 + count_tokens(text content)``; completion tokens = ``count_tokens(reply)`` per choice
    (for a tool call: ``count_tokens(name) + count_tokens(arguments)``). Embedding tokens =
    ``count_tokens`` per string input, or the length of a token-array input.
    ``cached_tokens`` is ``prompt_tokens // 2`` when any message contains ``[cached]``, else 0.
    Models whose name starts with ``o`` (``o3-mini``) report 10 ``reasoning_tokens`` per choice,
    included in ``completion_tokens``. ``gpt-4o-mini`` and ``gpt-4o`` answer with their dated
    snapshot names, like the real API (as do the Claude aliases below); other model names are
    echoed.

Anthropic Messages (``POST /v1/messages``)
    The prompt total ``P`` = ``4 + count_tokens(system)`` (when ``system`` is given; a string
    or text blocks, ``cache_control`` ignored) plus, per message, ``4 + count_tokens(text)``,
    where a message's text is its string content or its ``text`` blocks and ``tool_result``
    contents joined by spaces (``tool_use`` blocks count nothing). Usage follows Anthropic:
    ``cache_read_input_tokens`` = ``P // 2`` if any system or message text contains
    ``[cached]``; ``cache_creation_input_tokens`` = ``(P - cache_read_input_tokens) // 2`` if
    any contains ``[cache-write]`` (also under ``cache_creation.ephemeral_5m_input_tokens``);
    ``input_tokens`` is the uncached rest, so the three add up to ``P``. ``output_tokens`` as
    for chat (no reasoning tokens). ``max_tokens`` (required) cuts a text reply after that many
    tokens with ``stop_reason`` ``"max_tokens"``; otherwise it is ``"end_turn"``, or
    ``"tool_use"`` for a tool call (never cut). A streamed answer sends ``message_start``
    (usage with ``output_tokens: 1``, as the real API does), ``content_block_start``, ``ping``,
    ``content_block_delta`` (``text_delta`` or ``input_json_delta``), ``content_block_stop``,
    ``message_delta`` (``stop_reason`` and the cumulative usage) and ``message_stop``.
    ``claude-3-5-haiku-latest``, ``claude-3-7-sonnet-latest``, ``claude-sonnet-4-0`` and
    ``claude-haiku-4-5`` answer with their dated snapshot names (``claude-3-5-haiku-20241022``,
    ``claude-3-7-sonnet-20250219``, ``claude-sonnet-4-20250514``,
    ``claude-haiku-4-5-20251001``); other names are echoed.

Answered requests
    ``srv.answered`` lists every API request the server answered with a model's output
    (HTTP 200 on chat, Responses, embeddings and Messages; not ``GET /models``, and never an
    error, injected or not), oldest first, as dicts::

        {"endpoint": "chat" | "responses" | "embeddings" | "messages",
         "model": <the model name it answered with, e.g. "gpt-4o-mini-2024-07-18">,
         "stream": bool, "input_tokens": int, "output_tokens": int,
         "cache_read_tokens": int, "cache_write_tokens": int, "reasoning_tokens": int}

    ``input_tokens`` includes the cached ones, as OpenAI's ``prompt_tokens`` does; for
    Messages it is ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``.
    ``output_tokens`` includes the reasoning tokens (0 for embeddings). A request is logged
    when its answer is decided, before the first byte of it is sent, so whoever has read an
    answer finds it logged; a stream is logged with the usage the server computed even when
    the client did not ask for it (``include_usage``), and a request is logged when it is
    answered even if its client gave up waiting (``demo-slow`` past the client's timeout).
    ``srv.clear_answered()`` empties the log; it keeps the last ``ANSWERED_KEPT`` requests.
    Tests compare it with what tracing recorded: one logged request should be one counted
    LLM call, with these numbers.

Fault injection
    ``srv.fail_next(status, count=1, retry_after=None)`` makes the next ``count`` API requests
    fail; ``srv.set_latency(seconds)`` delays every response (the first chunk of streams);
    ``chunk_delay`` spaces stream chunks. Magic model names need no server handle (they work
    on every endpoint, Anthropic's included):

    * ``demo-error-500``: HTTP 500 ``server_error`` (Anthropic: ``api_error``).
    * ``demo-error-429``: HTTP 429 ``rate_limit_error`` with ``retry-after: 0``.
    * ``demo-slow``: the response is held for 2 s, so a client ``timeout`` below that fires.

    The ``openai`` client ignores a ``retry-after`` of 0 and falls back to its own backoff
    (about 0.5 s, then 1 s); pass a small positive value such as ``0.01`` for fast retries.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import ipaddress
import json
import math
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MODELS",
    "DemoServer",
    "count_tokens",
    "embedding_vector",
    "main",
    "response_model",
    "start",
]

JSON = dict[str, Any]

MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini", "text-embedding-3-small")
# The real API answers with the dated snapshot; tracing code must cope with the mismatch.
_MODEL_SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}

TOKENS_PER_MESSAGE = 4
REASONING_TOKENS = 10
CACHE_MARKER = "[cached]"
CACHE_WRITE_MARKER = "[cache-write]"
EMBEDDING_DIMENSIONS = 8
SNIPPET_CHARS = 60
SLOW_MODEL = "demo-slow"
SLOW_SECONDS = 2.0
_MAGIC_ERRORS: dict[str, tuple[int, float | None]] = {
    "demo-error-500": (500, None),
    "demo-error-429": (429, 0.0),
}
#: how many answered requests ``DemoServer.answered`` keeps (the oldest are dropped)
ANSWERED_KEPT = 100_000
_SYSTEM_FINGERPRINT = "fp_demo"
_MODELS_CREATED = 1_700_000_000

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_RE = re.compile(r"\w+")
# Words keep their trailing whitespace (and leading whitespace is its own piece) so the
# streamed pieces join back to exactly the non-streamed text.
_STREAM_PIECE_RE = re.compile(r"\S+\s*|\s+")


def count_tokens(text: str) -> int:
    """Count demo tokens: each run of word characters, plus each other non-space character.

    ``count_tokens("Hello, world!") == 4``. Not a real BPE tokenizer, just a stable rule
    tests can reproduce.
    """
    return len(_TOKEN_RE.findall(text))


def response_model(requested: str) -> str:
    """The model name the server reports for a requested model (dated snapshot if known)."""
    return _MODEL_SNAPSHOTS.get(requested, requested)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered as OpenAI-style JSON with the given HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def body(self) -> JSON:
        error_type, code = _error_kind(self.status)
        return {
            "error": {
                "message": self.message,
                "type": error_type,
                "param": self.param,
                "code": code,
            }
        }

    def anthropic_body(self, request_id: str) -> JSON:
        """The same error in the Anthropic Messages API's shape."""
        message = f"{self.param}: {self.message}" if self.param else self.message
        return {
            "type": "error",
            "error": {"type": _anthropic_error_type(self.status), "message": message},
            "request_id": request_id,
        }


_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "unknown_url"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def _error_kind(status: int) -> tuple[str, str | None]:
    if status in _ERROR_KINDS:
        return _ERROR_KINDS[status]
    if status >= 500:
        return ("server_error", "server_error")
    return ("invalid_request_error", None)


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _anthropic_error_type(status: int) -> str:
    if status in _ANTHROPIC_ERROR_TYPES:
        return _ANTHROPIC_ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _injected_error(status: int, retry_after: float | None) -> ApiError:
    return ApiError(status, f"Demo server: injected HTTP {status} error.", retry_after=retry_after)


# --------------------------------------------------------------------------- shared helpers


def _text_of(content: Any) -> str:
    """Plain text of a message ``content``: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _snippet(text: str) -> str:
    return text.strip()[:SNIPPET_CHARS] or "(empty)"


def _last_word(text: str) -> str:
    words = _WORD_RE.findall(text)
    return words[-1] if words else "demo"


def _stream_pieces(text: str) -> list[str]:
    return _STREAM_PIECE_RE.findall(text) or [text]


def _fragments(text: str, parts: int = 4) -> list[str]:
    """Split ``text`` into up to ``parts`` slices, as argument deltas arrive from the API."""
    size = max(1, math.ceil(len(text) / parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _require(condition: bool, message: str, param: str | None) -> None:
    if not condition:
        raise ApiError(400, message, param=param)


# Request fields are untrusted JSON: these coerce anything unexpected to an empty value.
def _as_dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class _Usage:
    """Token counts for one request; ``completion`` already includes ``reasoning``."""

    prompt: int
    completion: int
    cached: int
    reasoning: int

    @classmethod
    def compute(
        cls, model: str, prompt: int, prompt_text: str, visible: int, choices: int = 1
    ) -> _Usage:
        # Both rules are documented in the module docstring so tests can predict them.
        cached = prompt // 2 if CACHE_MARKER in prompt_text else 0
        reasoning = REASONING_TOKENS * choices if model.startswith("o") else 0
        return cls(prompt, visible + reasoning, cached, reasoning)

    def answered(self, endpoint: str, model: str, stream: bool) -> JSON:
        """The ``DemoServer.answered`` record of a request with this usage."""
        return _answered_record(endpoint, model, stream, prompt=self.prompt,
                                output=self.completion, cache_read=self.cached,
                                reasoning=self.reasoning)

    def as_chat(self) -> JSON:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning, "audio_tokens": 0},
        }

    def as_responses(self) -> JSON:
        return {
            "input_tokens": self.prompt,
            "input_tokens_details": {"cached_tokens": self.cached, "cache_write_tokens": 0},
            "output_tokens": self.completion,
            "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": self.prompt + self.completion,
        }


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


def _sse(data: JSON | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


# --------------------------------------------------------------------------- chat completions


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
    """The reply all three APIs share (see "Deterministic replies" in the module docstring).

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


def _select_tool(tools: Any, tool_choice: Any) -> JSON | None:
    """The function definition to call, honouring ``tool_choice`` "none" and named choices."""
    if tool_choice == "none":
        return None
    # Chat tools look like {"type": "function", "function": {"name", "parameters"}}.
    functions = [_as_dict(_as_dict(t).get("function")) for t in _as_list(tools)]
    functions = [f for f in functions if f]
    wanted = _as_dict(_as_dict(tool_choice).get("function")).get("name")
    return _pick_tool(functions, wanted)


def _last_user_text(messages: list[JSON]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _plan_chat_reply(body: JSON, request_no: int) -> _Reply:
    messages: list[JSON] = body["messages"]
    last = messages[-1]
    tool_output = _text_of(last.get("content")) if last.get("role") == "tool" else None
    tool = _select_tool(body.get("tools"), body.get("tool_choice"))
    return _plan_reply(
        tool_output, _last_user_text(messages), tool, "parameters", f"call_demo_{request_no}"
    )


def _chat_messages(body: JSON) -> list[JSON]:
    messages = _as_list(body.get("messages"))
    valid = all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)
    _require(
        bool(messages) and valid, "'messages' must be a non-empty array of messages.", "messages"
    )
    return messages


def _choice_count(body: JSON) -> int:
    n = body.get("n")
    if n is None:
        return 1
    if not isinstance(n, int) or not 1 <= n <= 128:
        raise ApiError(400, "'n' must be an integer between 1 and 128.", param="n")
    return n


@dataclass(frozen=True)
class _ChatCall:
    """A validated chat request plus everything the response needs."""

    id: str
    created: int
    model: str
    choices: int
    reply: _Reply
    usage: _Usage
    include_usage: bool

    @classmethod
    def from_body(cls, body: JSON, request_no: int) -> _ChatCall:
        messages = _chat_messages(body)
        choices = _choice_count(body)
        texts = [_text_of(m.get("content")) for m in messages]
        prompt = sum(TOKENS_PER_MESSAGE + count_tokens(t) for t in texts)
        reply = _plan_chat_reply(body, request_no)
        stream_options = body.get("stream_options") or {}
        return cls(
            id=f"chatcmpl-demo-{request_no}",
            created=int(time.time()),
            model=response_model(body["model"]),
            choices=choices,
            reply=reply,
            usage=_Usage.compute(
                body["model"], prompt, "\n".join(texts), reply.tokens() * choices, choices
            ),
            include_usage=bool(
                isinstance(stream_options, dict) and stream_options.get("include_usage")
            ),
        )

    def _envelope(self, kind: str) -> JSON:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": _SYSTEM_FINGERPRINT,
            "service_tier": "default",
        }

    def completion(self) -> JSON:
        choices = [
            {
                "index": i,
                "message": self.reply.message(),
                "logprobs": None,
                "finish_reason": self.reply.finish_reason,
            }
            for i in range(self.choices)
        ]
        return {
            **self._envelope("chat.completion"),
            "choices": choices,
            "usage": self.usage.as_chat(),
        }

    def chunks(self) -> Iterator[JSON]:
        # One chunk per choice per step, as the real API interleaves choices when n > 1.
        envelope = self._envelope("chat.completion.chunk")
        for delta in self.reply.deltas():
            for i in range(self.choices):
                choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": None}
                yield {**envelope, "choices": [choice]}
        for i in range(self.choices):
            final = {
                "index": i,
                "delta": {},
                "logprobs": None,
                "finish_reason": self.reply.finish_reason,
            }
            yield {**envelope, "choices": [final]}
        if self.include_usage:
            yield {**envelope, "choices": [], "usage": self.usage.as_chat()}


def _chat_completions(body: JSON, request_no: int) -> _Answer:
    call = _ChatCall.from_body(body, request_no)
    stream = body.get("stream") is True
    record = call.usage.answered("chat", call.model, stream)
    return _Answer(_chat_stream(call) if stream else call.completion(), record)


def _chat_stream(call: _ChatCall) -> Iterator[bytes]:
    for chunk in call.chunks():
        yield _sse(chunk)
    yield _sse("[DONE]")


# --------------------------------------------------------------------------- embeddings


def _embedding_inputs(raw: Any) -> list[str | list[int]]:
    """Normalise ``input``: a string, a token array, or a list of either."""
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        items = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        items = []
    valid = bool(items) and all(isinstance(x, (str, list)) and len(x) > 0 for x in items)
    _require(valid, "'input' must be a non-empty string, token array, or list of them.", "input")
    return items


def embedding_vector(item: str | list[int], dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The deterministic unit vector the server returns for one embedding input.

    Values are rounded to float32 so the ``float`` and ``base64`` encodings agree exactly.
    """
    key = item if isinstance(item, str) else json.dumps(item)
    digest = hashlib.shake_256(key.encode()).digest(4 * dimensions)
    raw = [v / 0xFFFFFFFF * 2 - 1 for v in struct.unpack(f"<{dimensions}I", digest)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return list(
        struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in raw)))
    )


def _encode_embedding(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        # The openai client decodes base64 as a little-endian float32 array.
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def _embeddings(body: JSON, request_no: int) -> _Answer:
    items = _embedding_inputs(body.get("input"))
    encoding = body.get("encoding_format") or "float"
    _require(
        encoding in ("float", "base64"),
        "'encoding_format' must be 'float' or 'base64'.",
        "encoding_format",
    )
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    _require(
        isinstance(dimensions, int) and 0 < dimensions <= 4096,
        "'dimensions' must be 1-4096.",
        "dimensions",
    )
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encode_embedding(embedding_vector(item, dimensions), encoding),
        }
        for i, item in enumerate(items)
    ]
    tokens = sum(count_tokens(x) if isinstance(x, str) else len(x) for x in items)
    model = response_model(body["model"])
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return _Answer(payload, _answered_record("embeddings", model, False, prompt=tokens, output=0))


# --------------------------------------------------------------------------- responses API


def _response_items(body: JSON) -> list[JSON]:
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    items = _as_list(raw)
    valid = bool(items) and all(isinstance(x, dict) for x in items)
    _require(valid, "'input' must be a string or a non-empty array of input items.", "input")
    return items


def _item_text(item: JSON) -> str:
    # Tool results (function_call_output) carry their text in "output", messages in "content".
    return _text_of(item.get("content", item.get("output")))


def _select_response_tool(tools: Any, tool_choice: Any) -> JSON | None:
    """The function tool to call; Responses tools are flat: ``{"type", "name", "parameters"}``."""
    if tool_choice == "none":
        return None
    functions = [t for t in map(_as_dict, _as_list(tools)) if t.get("type") == "function"]
    return _pick_tool(functions, _as_dict(tool_choice).get("name"))


def _plan_response_reply(body: JSON, items: list[JSON], request_no: int) -> _Reply:
    last = items[-1]
    tool_output = _item_text(last) if last.get("type") == "function_call_output" else None
    user_texts = [_item_text(i) for i in items if i.get("role") == "user"]
    tool = _select_response_tool(body.get("tools"), body.get("tool_choice"))
    user_text = user_texts[-1] if user_texts else ""
    return _plan_reply(tool_output, user_text, tool, "parameters", f"call_demo_{request_no}")


@dataclass(frozen=True)
class _ResponseCall:
    """A validated Responses API request and the pieces of its answer."""

    body: JSON
    id: str
    item_id: str
    created: int
    reply: _Reply
    usage: _Usage

    @classmethod
    def from_body(cls, body: JSON, request_no: int) -> _ResponseCall:
        items = _response_items(body)
        instructions = body.get("instructions")
        texts = [_item_text(i) for i in items]
        if isinstance(instructions, str):
            texts.insert(0, instructions)
        prompt = sum(TOKENS_PER_MESSAGE + count_tokens(t) for t in texts)
        reply = _plan_response_reply(body, items, request_no)
        prefix = "msg" if reply.text is not None else "fc"
        return cls(
            body=body,
            id=f"resp_demo_{request_no}",
            item_id=f"{prefix}_demo_{request_no}",
            created=int(time.time()),
            reply=reply,
            usage=_Usage.compute(body["model"], prompt, "\n".join(texts), reply.tokens()),
        )

    def part(self, text: str) -> JSON:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def message(self, status: str, parts: list[JSON]) -> JSON:
        return {
            "type": "message",
            "id": self.item_id,
            "status": status,
            "role": "assistant",
            "content": parts,
        }

    def function_call(self, *, done: bool) -> JSON:
        return {
            "type": "function_call",
            "id": self.item_id,
            "call_id": self.reply.tool_call_id,
            "name": self.reply.tool_name,
            "arguments": self.reply.tool_arguments if done else "",
            "status": "completed" if done else "in_progress",
        }

    def output_item(self) -> JSON:
        """The finished output item: a message, or a function call."""
        if self.reply.text is None:
            return self.function_call(done=True)
        return self.message("completed", [self.part(self.reply.text)])

    def response(self, *, done: bool) -> JSON:
        """The Response object; in progress (no output, no usage) until ``done``."""
        body = self.body
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "completed_at": int(time.time()) if done else None,
            "status": "completed" if done else "in_progress",
            "model": response_model(body["model"]),
            "output": [self.output_item()] if done else [],
            "usage": self.usage.as_responses() if done else None,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {},
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "user": body.get("user"),
        }

    def events(self) -> Iterator[JSON]:
        """The Responses streaming event sequence, without sequence numbers."""
        yield {"type": "response.created", "response": self.response(done=False)}
        yield {"type": "response.in_progress", "response": self.response(done=False)}
        if self.reply.text is None:
            yield from self._function_call_events()
        else:
            yield from self._message_events(self.reply.text)
        yield {"type": "response.output_item.done", "output_index": 0, "item": self.output_item()}
        yield {"type": "response.completed", "response": self.response(done=True)}

    def _message_events(self, text: str) -> Iterator[JSON]:
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        yield {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": self.message("in_progress", []),
        }
        yield {"type": "response.content_part.added", **where, "part": self.part("")}
        for piece in _stream_pieces(text):
            yield {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
        yield {"type": "response.output_text.done", **where, "text": text, "logprobs": []}
        yield {"type": "response.content_part.done", **where, "part": self.part(text)}

    def _function_call_events(self) -> Iterator[JSON]:
        where = {"item_id": self.item_id, "output_index": 0}
        yield {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": self.function_call(done=False),
        }
        for fragment in _fragments(self.reply.tool_arguments):
            yield {"type": "response.function_call_arguments.delta", **where, "delta": fragment}
        yield {
            "type": "response.function_call_arguments.done",
            **where,
            "arguments": self.reply.tool_arguments,
        }


def _responses(body: JSON, request_no: int) -> _Answer:
    call = _ResponseCall.from_body(body, request_no)
    stream = body.get("stream") is True
    record = call.usage.answered("responses", response_model(body["model"]), stream)
    return _Answer(_responses_stream(call) if stream else call.response(done=True), record)


def _responses_stream(call: _ResponseCall) -> Iterator[bytes]:
    # Unlike chat completions, the Responses stream has named events and no [DONE] sentinel.
    for number, event in enumerate(call.events()):
        yield _sse({**event, "sequence_number": number}, event=event["type"])


# --------------------------------------------------------------------------- anthropic messages


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
        # Documented in the module docstring so tests can predict the split.
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


# --------------------------------------------------------------------------- models


def _models(body: JSON, request_no: int) -> _Answer:
    data = [
        {"id": m, "object": "model", "created": _MODELS_CREATED, "owned_by": "llmtrace-demo"}
        for m in MODELS
    ]
    return _Answer({"object": "list", "data": data})  # not a model's answer: not logged


_Route = Callable[[JSON, int], _Answer]
_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", "/v1/chat/completions"): _chat_completions,
    ("POST", "/v1/embeddings"): _embeddings,
    ("POST", "/v1/responses"): _responses,
    ("POST", "/v1/messages"): _anthropic_messages,
    ("GET", "/v1/models"): _models,
}


def _parse_body(raw: bytes) -> JSON:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from None
    _require(isinstance(body, dict), "The request body must be a JSON object.", None)
    _require(
        isinstance(body.get("model"), str) and bool(body["model"]), "'model' is required.", "model"
    )
    return body


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its DemoServer and can close kept-alive connections."""

    daemon_threads = True
    # Tests open a thousand connections at once (concurrent AsyncOpenAI calls); a short
    # listen backlog would turn that burst into connection resets and client retries.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], demo: DemoServer) -> None:
        self.demo = demo
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse-DNS lookup (socket.getfqdn) that can stall
        # for seconds on machines without working DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up between requests (reset keep-alive connection, abandoned
        # stream) is normal here; only print tracebacks for real bugs.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        # Handler threads idle on keep-alive connections would otherwise outlive stop().
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by the client
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so the client can keep connections alive; every response therefore carries
    # either Content-Length or chunked transfer encoding.
    protocol_version = "HTTP/1.1"
    server_version = "llmtrace-demo/1.0"
    sys_version = ""
    server: _HTTPServer
    # No Nagle stall: with Nagle's algorithm on, a response written as headers then body
    # waits for the client's delayed ACK before the body goes out (~40 ms per call on
    # loopback). TCP_NODELAY sends every write at once, and a buffered wfile (flushed by
    # the base class after each response, and per frame by _write_chunk) puts the headers
    # and the body, or the first stream frame, in a single segment.
    disable_nagle_algorithm = True
    wbufsize = -1

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Print nothing: keeps notebook and test output clean, and headers out of logs."""

    def handle_expect_100(self) -> bool:
        # The interim "100 Continue" must leave the buffered wfile before the body is read.
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        request_no = self.server.demo._begin_request()
        try:
            self._answer(request_no)
        except ConnectionError:
            # The client gave up (timeout, closed stream); nothing left to tell it.
            self.close_connection = True

    def _answer(self, request_no: int) -> None:
        try:
            answer = self._dispatch(request_no)
        except ApiError as error:
            self._send_error(error, request_no)
            return
        except Exception:  # a demo bug should look like a 500, not a dropped connection
            self._send_error(ApiError(500, "The demo server had an internal error."), request_no)
            return
        if answer.record is not None:
            # logged before the first byte leaves: a client that has the answer finds it
            self.server.demo._log_answered(answer.record)
        if isinstance(answer.payload, dict):
            self._send_json(200, answer.payload, request_no)
        else:
            self._send_stream(answer.payload, request_no)

    def _dispatch(self, request_no: int) -> _Answer:
        raw = self._read_body()
        path = urlsplit(self.path).path.rstrip("/")
        route = _ROUTES.get((self.command, path))
        if route is None:
            raise ApiError(404, f"Invalid URL ({self.command} {path}).")
        demo = self.server.demo
        demo._before_response()
        body: JSON = {}
        if self.command == "POST":
            body = _parse_body(raw)
            demo._apply_magic_model(body["model"])
        return route(body, request_no)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True  # the body boundary is unknown, so the stream is too
            raise ApiError(400, "Invalid Content-Length header.")
        return self.rfile.read(length) if length else b""

    def _is_anthropic(self) -> bool:
        """Whether this is an Anthropic Messages API route (errors in Anthropic's shape)."""
        path = urlsplit(self.path).path.rstrip("/")
        return path == "/v1/messages" or path.startswith("/v1/messages/")

    def _start(self, status: int, content_type: str, request_no: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        # OpenAI's clients read x-request-id, Anthropic's request-id.
        name = "request-id" if self._is_anthropic() else "x-request-id"
        self.send_header(name, f"req_demo_{request_no}")

    def _send_json(
        self, status: int, payload: JSON, request_no: int, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self._start(status, "application/json", request_no)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, error: ApiError, request_no: int) -> None:
        headers = {}
        if error.retry_after is not None:
            headers["retry-after"] = f"{error.retry_after:g}"
        if self._is_anthropic():
            body = error.anthropic_body(f"req_demo_{request_no}")
        else:
            body = error.body()
        self._send_json(error.status, body, request_no, headers)

    def _send_stream(self, frames: Iterator[bytes], request_no: int) -> None:
        # Chunked encoding delimits the body without knowing its length up front, so the
        # client sees each SSE frame as soon as it is written and the connection stays reusable.
        self._start(200, "text/event-stream; charset=utf-8", request_no)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        demo = self.server.demo
        for index, frame in enumerate(frames):
            if index:
                demo._pause(demo.chunk_delay)
            self._write_chunk(frame)
        self._write_chunk(b"")  # the zero-length chunk ends the body

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


# --------------------------------------------------------------------------- public server


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: float | None


def _check_loopback(host: str) -> None:
    # The server checks no credentials, so it must never be reachable from the network.
    try:
        loopback = host == "localhost" or ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"DemoServer only binds to IPv4 loopback addresses, not {host!r}")


class DemoServer:
    """A deterministic OpenAI-compatible server on ``127.0.0.1``; see the module docstring.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. Thread-safe.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> None:
        _check_loopback(host)
        self.host = host
        self.latency = latency
        self.chunk_delay = chunk_delay
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.Lock()
        self._requests = 0
        self._failures: deque[_Failure] = deque()
        self._answered: deque[JSON] = deque(maxlen=ANSWERED_KEPT)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> DemoServer:
        """Bind and serve in a daemon thread; returns ``self``. A no-op if already running."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self._requested_port), self)
        self._httpd, self._port = httpd, httpd.server_address[1]
        # A short poll interval keeps stop() fast; the loop is idle otherwise.
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"llmtrace-demo-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections. Safe to call more than once."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency or demo-slow
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and counters

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("DemoServer has not been started")
        return self._port

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url=`` to ``openai.OpenAI``, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """What to pass as ``base_url=`` to ``anthropic.Anthropic``: ``http://127.0.0.1:PORT``.

        The anthropic client appends ``/v1/messages`` itself, so this has no ``/v1``.
        """
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> int:
        """Number of HTTP requests received so far (any route, including failures)."""
        with self._lock:
            return self._requests

    @property
    def answered(self) -> list[JSON]:
        """The API requests answered so far, oldest first (see "Answered requests" in the
        module docstring); a copy, safe to keep while the server goes on."""
        with self._lock:
            return [dict(record) for record in self._answered]

    def clear_answered(self) -> None:
        """Empty :attr:`answered` (the request counter is not reset)."""
        with self._lock:
            self._answered.clear()

    # -- behaviour controls

    def set_latency(self, seconds: float) -> None:
        """Delay every subsequent response (the first chunk, for streams) by ``seconds``."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency = seconds

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``count`` API requests with HTTP ``status`` and an OpenAI error body.

        ``retry_after`` (seconds, may be fractional) is sent as a ``retry-after`` header.
        Calls queue up: ``fail_next(429); fail_next(500)`` fails with 429 first, then 500.
        """
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._failures.extend([_Failure(status, retry_after)] * count)

    def clear_failures(self) -> None:
        """Drop failures queued by :meth:`fail_next` that have not fired yet."""
        with self._lock:
            self._failures.clear()

    # -- used by the request handler

    def _begin_request(self) -> int:
        with self._lock:
            self._requests += 1
            return self._requests

    def _log_answered(self, record: JSON) -> None:
        with self._lock:
            self._answered.append(record)

    def _pause(self, seconds: float) -> None:
        # An Event wait rather than time.sleep so stop() interrupts it immediately.
        if seconds > 0:
            self._stopping.wait(seconds)

    def _before_response(self) -> None:
        self._pause(self.latency)
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            raise _injected_error(failure.status, failure.retry_after)

    def _apply_magic_model(self, model: str) -> None:
        if model == SLOW_MODEL:
            self._pause(SLOW_SECONDS)
        elif model in _MAGIC_ERRORS:
            raise _injected_error(*_MAGIC_ERRORS[model])


def start(**kwargs: Any) -> DemoServer:
    """Start a :class:`DemoServer` (keyword arguments as for its constructor) and return it."""
    return DemoServer(**kwargs).start()


# --------------------------------------------------------------------------- command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m llmtrace_nb.demo",
        description="Serve a deterministic OpenAI-compatible API on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    parser.add_argument(
        "--chunk-delay", type=float, default=0.0, help="seconds between stream chunks"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server in the foreground; the base URL is the first line on stdout."""
    args = _parse_args(argv)
    server = start(port=args.port, latency=args.latency, chunk_delay=args.chunk_delay)
    print(server.base_url, flush=True)
    print(
        f"llmtrace demo server running (anthropic base_url: {server.anthropic_base_url}); "
        "Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    # Treat SIGTERM like Ctrl-C so the `finally` below runs under process managers too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
