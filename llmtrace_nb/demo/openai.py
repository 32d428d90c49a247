"""OpenAI's endpoints: chat completions, embeddings, the Responses API and the model list,
with OpenAI's usage shapes."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._answers import (
    _Answer,
    _answered_record,
    _last_user_text,
    _pick_tool,
    _plan_reply,
    _Reply,
)
from ._common import (
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

MODELS = ("gpt-4o-mini", "gpt-4o", "o3-mini", "text-embedding-3-small")
REASONING_TOKENS = 10
EMBEDDING_DIMENSIONS = 8
_SYSTEM_FINGERPRINT = "fp_demo"
_MODELS_CREATED = 1_700_000_000


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
        # Both rules are documented in the package docstring so tests can predict them.
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


# --------------------------------------------------------------------------- chat completions


def _select_tool(tools: Any, tool_choice: Any) -> JSON | None:
    """The function definition to call, honouring ``tool_choice`` "none" and named choices."""
    if tool_choice == "none":
        return None
    # Chat tools look like {"type": "function", "function": {"name", "parameters"}}.
    functions = [_as_dict(_as_dict(t).get("function")) for t in _as_list(tools)]
    functions = [f for f in functions if f]
    wanted = _as_dict(_as_dict(tool_choice).get("function")).get("name")
    return _pick_tool(functions, wanted)


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

    Parameters
    ----------
    item : str or list of int
        One input: a string or a token array.
    dimensions : int, default 8
        The vector's length (the request's ``dimensions``).

    Returns
    -------
    list of float
        An L2-normalised vector derived from a hash of ``item``.

    Examples
    --------
    >>> from llmtrace_nb.demo import embedding_vector
    >>> len(embedding_vector("hello", dimensions=4))
    4
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


# --------------------------------------------------------------------------- models


def _models(body: JSON, request_no: int) -> _Answer:
    data = [
        {"id": m, "object": "model", "created": _MODELS_CREATED, "owned_by": "llmtrace-demo"}
        for m in MODELS
    ]
    return _Answer({"object": "list", "data": data})  # not a model's answer: not logged
