"""Normalize: raw span attributes of any GenAI dialect → the contract's fields.

Second stage of the data flow. Pure functions, no state. Each normalized field has an
ordered list of attribute keys to try (``FIELD_KEYS``): the current OpenTelemetry GenAI
conventions first, then their deprecated keys, OpenLLMetry's older keys and OpenInference.
Adding a dialect means adding keys to these tables and, for messages, one reader.

The names of the OpenTelemetry conventions are opentelemetry-semantic-conventions' (the
GenAI ones through ``_capture/genai.py``); the keys that package does not have (older
spellings, OpenLLMetry, OpenInference, other tools) are written here, once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import EXCEPTION_TYPE

from .._capture import keys as own_keys
from .._capture.genai import (
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_SYSTEM,
    GEN_AI_SYSTEM_INSTRUCTIONS,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_ID,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_COMPLETION_TOKENS,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_PROMPT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    OPENLLMETRY_REASONING_TOKENS,
)
from .values import as_text, to_bool, to_count, to_float, to_reasons, to_text

# -- scalar fields ------------------------------------------------------------------------

FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "provider": (
        GEN_AI_PROVIDER_NAME,
        GEN_AI_SYSTEM,  # deprecated in favour of gen_ai.provider.name
        "llm.provider",  # OpenInference
        "llm.system",  # OpenInference
    ),
    "request_model": (
        GEN_AI_REQUEST_MODEL,
        "llm.request.model",
        "embedding.model_name",  # OpenInference embeddings
    ),
    # OpenInference's llm.model_name is the model that answered (a dated snapshot name)
    "response_model": (GEN_AI_RESPONSE_MODEL, "llm.response.model", "llm.model_name"),
    "input_tokens": (
        GEN_AI_USAGE_INPUT_TOKENS,
        GEN_AI_USAGE_PROMPT_TOKENS,  # deprecated
        "llm.usage.prompt_tokens",  # OpenLLMetry <= 0.54
        "llm.token_count.prompt",  # OpenInference
    ),
    "output_tokens": (
        GEN_AI_USAGE_OUTPUT_TOKENS,
        GEN_AI_USAGE_COMPLETION_TOKENS,  # deprecated
        "llm.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "total_tokens": (
        "gen_ai.usage.total_tokens",
        "llm.usage.total_tokens",
        "llm.token_count.total",
    ),
    "cache_read_tokens": (
        GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry's earlier spelling
        "llm.token_count.prompt_details.cache_read",
    ),
    # prompt-cache writes (Anthropic's cache_creation), priced at the cache-write rate
    "cache_write_tokens": (
        GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",  # OpenLLMetry's earlier spelling
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning_tokens": (
        GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        OPENLLMETRY_REASONING_TOKENS,
        "llm.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
    "is_streaming": ("gen_ai.is_streaming", GEN_AI_REQUEST_STREAM, "llm.is_streaming"),
    "finish_reasons": (
        GEN_AI_RESPONSE_FINISH_REASONS,
        "llm.response.finish_reason",
        "llm.finish_reason",  # OpenInference
        "gen_ai.completion.0.finish_reason",  # OpenLLMetry <= 0.54
        "anthropic.message.stop_reason",  # the Anthropic SDK's own spans
    ),
    "operation": (GEN_AI_OPERATION_NAME, "llm.request.type"),
    # the provider's id of the answer: two spans with the same id describe one call
    "response_id": (GEN_AI_RESPONSE_ID, "llm.response.id"),
    # seconds, per the GenAI conventions
    # (openlit sets its key on calls it did not stream too: frames.py keeps a TTFT only
    # for streamed calls)
    "ttft_s": (GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
               "gen_ai.client.operation.time_to_first_chunk",  # pydantic-ai
               "gen_ai.server.time_to_first_token"),  # openlit
    # a cost the instrumentation already computed (OpenInference) wins over ours
    "cost_usd": ("llm.cost.total", "gen_ai.usage.cost"),
    "error_type": (ERROR_TYPE, EXCEPTION_TYPE),
}

#: the event whose first occurrence marks the first streamed chunk
FIRST_CHUNK_EVENTS = ("gen_ai.content.completion.chunk", "First Token Stream Event")

# -- kinds --------------------------------------------------------------------------------

KINDS = ("llm", "embedding", "tool", "retrieval", "agent", "chain", "cell", "other")
#: the kinds that are calls to a model: they count tokens and are priced
PRICED_KINDS = ("llm", "embedding")
#: the calls: to a model, or to a tool (their detail is kept and shown first)
CALL_KINDS = (*PRICED_KINDS, "tool")

#: values of a kind-carrying attribute → contract kind; the first key present wins
KIND_KEYS: tuple[tuple[str, Mapping[str, str]], ...] = (
    (own_keys.KIND, {k: k for k in KINDS}),
    (
        "openinference.span.kind",
        {
            "llm": "llm",
            "embedding": "embedding",
            "tool": "tool",
            "retriever": "retrieval",
            "reranker": "retrieval",
            "agent": "agent",
            "chain": "chain",
            # a prompt template being filled in, a guardrail: steps of a chain
            "prompt": "chain",
            "guardrail": "chain",
        },
    ),
    # before the GenAI operation: OpenLLMetry's LangChain instrumentation marks a chain
    # "workflow" and also writes gen_ai.operation.name=invoke_agent on it
    (
        "traceloop.span.kind",
        {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"},
    ),
    (
        GEN_AI_OPERATION_NAME,
        {
            "chat": "llm",
            "text_completion": "llm",
            "completion": "llm",
            "generate_content": "llm",
            "response": "llm",
            "responses": "llm",
            "embeddings": "embedding",
            "embedding": "embedding",
            "execute_tool": "tool",
            "invoke_agent": "agent",
            "create_agent": "agent",
            "retrieval": "retrieval",
        },
    ),
    (
        "llm.request.type",
        {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "retrieval"},
    ),
)


def span_kind(attrs: Mapping[str, Any], fields: Mapping[str, Any]) -> str:
    for key, table in KIND_KEYS:
        value = attrs.get(key)
        if isinstance(value, str):
            kind = table.get(value.lower())
            if kind is not None:
                return kind
    return kind_from_fields(fields.get("request_model"), fields.get("response_model"),
                            fields.get("input_tokens"), fields.get("output_tokens"))


def kind_from_fields(request_model: Any, response_model: Any, input_tokens: Any,
                     output_tokens: Any) -> str:
    """The kind of a span no kind-carrying key names: a span that names a model and
    counts tokens is an LLM call whatever its dialect."""
    if (request_model or response_model) and (input_tokens is not None
                                               or output_tokens is not None):
        return "llm"
    return "other"


# -- coercion -----------------------------------------------------------------------------
#
# The coercions are values.py's; this table says which field takes which.

COERCE: dict[str, Callable[[Any], Any]] = {
    "input_tokens": to_count,
    "output_tokens": to_count,
    "total_tokens": to_count,
    "cache_read_tokens": to_count,
    "cache_write_tokens": to_count,
    "reasoning_tokens": to_count,
    "is_streaming": to_bool,
    "finish_reasons": to_reasons,
    "ttft_s": to_float,
    "cost_usd": to_float,
}


UNREADABLE = "_unreadable"


def scalar_fields(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The first usable value for each field in ``FIELD_KEYS``, coerced to its type.

    Keys whose value could not be read (a token count of "-3", NaN…) are listed under
    ``UNREADABLE``, so the row can say so instead of silently showing nothing.
    """
    out: dict[str, Any] = {}
    unreadable: list[str] = []
    for field_name, keys in FIELD_KEYS.items():
        coerce = COERCE.get(field_name, to_text)
        value = None
        for key in keys:
            raw = attrs.get(key)
            if raw is not None:
                value = coerce(raw)
                if value is not None:
                    break
                unreadable.append(key)
        out[field_name] = value
    out[UNREADABLE] = unreadable
    fallbacks(attrs, out)
    out["cost_usd"] = given_cost(out["cost_usd"])
    if out["error_type"] is not None:
        out["error_type"] = error_name(out["error_type"])
    return out


#: OpenInference keeps the requested model and ``stream`` in this JSON attribute
INVOCATION_PARAMETERS = "llm.invocation_parameters"
#: OpenInference's cost parts, summed when it gives no total
COST_PARTS = ("llm.cost.prompt", "llm.cost.completion")
#: the keys whose presence makes :func:`fallbacks` apply
FALLBACK_KEYS = (INVOCATION_PARAMETERS, *COST_PARTS)


def fallbacks(attrs: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Fields some dialects give only indirectly; fills what ``out`` lacks, in place.

    OpenInference keeps the requested model and ``stream`` in its invocation parameters
    (a JSON string), and may give a cost only as prompt and completion parts.
    """
    if out.get("request_model") is None or out.get("is_streaming") is None:
        params = _loads(attrs.get(INVOCATION_PARAMETERS))
        if isinstance(params, Mapping):
            if out.get("request_model") is None and isinstance(params.get("model"), str):
                out["request_model"] = params["model"]
            if out.get("is_streaming") is None and "model" in params:
                out["is_streaming"] = bool(params.get("stream", False))
    if out.get("cost_usd") is None:
        parts = [to_float(attrs.get(k)) for k in COST_PARTS]
        if any(p is not None for p in parts):
            out["cost_usd"] = sum(p for p in parts if p is not None)


def given_cost(value: float | None) -> float | None:
    """A cost another tool recorded counts only when it is a positive number.

    openlit records 0 when it could not download its price list; 0, negative or NaN
    means "not priced", and the call is priced from genai-prices instead.
    """
    return value if value is not None and value > 0 else None


_CLASS_REPR = re.compile(r"^<class '([^']+)'>$")


def error_name(value: str) -> str:
    """The exception's class name, however the dialect spelled it.

    OpenLLMetry writes ``InternalServerError``, OpenInference ``openai.InternalServerError``
    and the contrib instrumentation ``<class 'openai.InternalServerError'>``.
    """
    text = value.strip().strip("'\"")
    m = _CLASS_REPR.match(text)
    if m:
        text = m.group(1)
    return text.rsplit(".", 1)[-1] if re.fullmatch(r"[\w.]+", text) else text


# -- messages -----------------------------------------------------------------------------
#
# Normal form of one message: {"role": str, "content": str | None} plus, when present,
# "tool_calls": [{"id", "name", "arguments"}], "tool_call_id" and "name".

Message = dict[str, Any]


def _is_mapping(value: Any) -> bool:
    # Parsed JSON gives dicts: test that first, the Mapping ABC check is ten times slower.
    return type(value) is dict or isinstance(value, Mapping)


def loads(value: Any) -> Any:
    """Parsed JSON when ``value`` is a JSON string (None when it is not), else ``value``."""
    return _loads(value)


def _loads(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return None
    return value


def _parts_text(parts: Any) -> tuple[str | None, list[dict[str, Any]], str | None]:
    """Text, tool calls and tool-call id of a "parts" list (GenAI conventions)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    call_id = None
    if type(parts) is str:
        return parts, calls, None
    if not isinstance(parts, list):
        return None, calls, None
    for part in parts:
        if not _is_mapping(part):
            continue
        ptype = part.get("type")
        if ptype == "tool_call":
            calls.append(
                {"id": part.get("id"), "name": part.get("name"), "arguments": part.get("arguments")}
            )
        elif ptype == "tool_call_response":
            call_id = part.get("id")
            texts.append(as_text(part.get("response", part.get("result"))))
        else:
            content = part.get("content", part.get("text"))
            if content is not None:
                texts.append(as_text(content))
    return ("\n".join(texts) if texts else None), calls, call_id


def _from_json_messages(value: Any) -> list[Message] | None:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` and OpenAI-shaped lists."""
    data = _loads(value)
    if _is_mapping(data):
        data = [data]
    if not isinstance(data, list):
        if isinstance(value, str) and value.strip():
            # not JSON (or cut short): show the text as it is, marked
            return [{"role": "unknown", "content": value, "unreadable": True}]
        return None
    out: list[Message] = []
    for item in data:
        if not _is_mapping(item):
            continue
        msg: Message = {"role": str(item.get("role") or "unknown")}
        if "parts" in item:
            text, calls, call_id = _parts_text(item.get("parts"))
        else:  # OpenAI-style {"role", "content", "tool_calls"}
            text, calls, call_id = _parts_text(item.get("content"))
            for call in item.get("tool_calls") or ():
                if _is_mapping(call):
                    fn = call.get("function") or {}
                    calls.append(
                        {
                            "id": call.get("id"),
                            "name": fn.get("name", call.get("name")),
                            "arguments": fn.get("arguments", call.get("arguments")),
                        }
                    )
            call_id = item.get("tool_call_id", call_id)
        msg["content"] = text
        if calls:
            msg["tool_calls"] = calls
        if call_id:
            msg["tool_call_id"] = call_id
        if item.get("name"):
            msg["name"] = str(item["name"])
        if item.get("finish_reason"):
            msg["finish_reason"] = str(item["finish_reason"])
        out.append(msg)
    return out


_INDEXED = re.compile(r"^(\d+)\.(.+)$")


def _indexed(attrs: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """``prefix.N.rest`` keys grouped by N."""
    groups: dict[int, dict[str, Any]] = {}
    plen = len(prefix)
    for key, value in attrs.items():
        if key.startswith(prefix):
            m = _INDEXED.match(key[plen:])
            if m:
                groups.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return groups


def _calls_from_flat(flat: Mapping[str, Any], prefix: str, name_key: str, args_key: str,
                     id_key: str) -> list[dict[str, Any]]:
    calls = []
    for _, call in sorted(_indexed(flat, prefix).items()):
        calls.append(
            {"id": call.get(id_key), "name": call.get(name_key), "arguments": call.get(args_key)}
        )
    return calls


def _from_openllmetry(attrs: Mapping[str, Any], prefix: str) -> list[Message] | None:
    """OpenLLMetry <= 0.54: ``gen_ai.prompt.N.role`` / ``.content`` / ``.tool_calls.M.*``."""
    groups = _indexed(attrs, prefix)
    if not groups:
        return None
    out: list[Message] = []
    for _, flat in sorted(groups.items()):
        text, _, _ = _parts_text(_loads_if_list(flat.get("content")))
        msg: Message = {"role": str(flat.get("role") or "unknown"), "content": text}
        calls = _calls_from_flat(flat, "tool_calls.", "name", "arguments", "id")
        if calls:
            msg["tool_calls"] = calls
        if flat.get("tool_call_id"):
            msg["tool_call_id"] = flat["tool_call_id"]
        if flat.get("finish_reason"):
            msg["finish_reason"] = str(flat["finish_reason"])
        out.append(msg)
    return out


def _loads_if_list(value: Any) -> Any:
    # OpenLLMetry stores multi-part content as a JSON list in a string.
    if isinstance(value, str) and value.startswith("[{"):
        parsed = _loads(value)
        return parsed if isinstance(parsed, list) else value
    return value


def _from_openinference(attrs: Mapping[str, Any], prefix: str) -> list[Message] | None:
    """OpenInference: ``llm.input_messages.N.message.role`` / ``.content`` / tool calls."""
    groups = _indexed(attrs, prefix)
    if not groups:
        return None
    out: list[Message] = []
    for _, flat in sorted(groups.items()):
        content = flat.get("message.content")
        if content is None:
            texts = [
                v for k, v in sorted(flat.items())
                if k.startswith("message.contents.") and k.endswith("message_content.text")
            ]
            content = "\n".join(str(t) for t in texts) if texts else None
        msg: Message = {"role": str(flat.get("message.role") or "unknown"),
                        "content": to_text(content)}
        calls = _calls_from_flat(
            flat, "message.tool_calls.", "tool_call.function.name",
            "tool_call.function.arguments", "tool_call.id",
        )
        if calls:
            msg["tool_calls"] = calls
        if flat.get("message.tool_call_id"):
            msg["tool_call_id"] = flat["message.tool_call_id"]
        if flat.get("message.name"):
            msg["name"] = str(flat["message.name"])
        out.append(msg)
    return out


#: deprecated GenAI message events → role
EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _from_events(events: Iterable[tuple[str, int, Mapping[str, Any]]]
                 ) -> tuple[list[Message] | None, list[Message] | None]:
    """Deprecated GenAI message events and the contrib ``inference.operation.details``.

    Events are (name, timestamp, attributes) tuples, as records keep them.
    """
    inputs: list[Message] = []
    outputs: list[Message] = []
    for name, _, attrs in events:
        if name in EVENT_ROLES:
            msg = _event_message(attrs, EVENT_ROLES[name])
            inputs.append(msg)
        elif name == "gen_ai.choice":
            body = _loads(attrs.get("message")) or {}
            msg = _event_message(body if isinstance(body, Mapping) else {}, "assistant")
            if attrs.get("finish_reason"):
                msg["finish_reason"] = str(attrs["finish_reason"])
            outputs.append(msg)
        elif name == "gen_ai.client.inference.operation.details":
            inputs.extend(_from_json_messages(attrs.get(GEN_AI_INPUT_MESSAGES)) or [])
            outputs.extend(_from_json_messages(attrs.get(GEN_AI_OUTPUT_MESSAGES)) or [])
    return inputs or None, outputs or None


def _event_message(attrs: Mapping[str, Any], default_role: str) -> Message:
    content = attrs.get("content")
    parsed = _loads_if_list(content)
    text, _, _ = _parts_text(parsed)
    msg: Message = {"role": str(attrs.get("role") or default_role), "content": text}
    calls = _loads(attrs.get("tool_calls"))
    if isinstance(calls, list):
        msg["tool_calls"] = [
            {
                "id": c.get("id"),
                "name": (c.get("function") or {}).get("name"),
                "arguments": (c.get("function") or {}).get("arguments"),
            }
            for c in calls
            if isinstance(c, Mapping)
        ]
    if attrs.get("id") and msg["role"] == "tool":
        msg["tool_call_id"] = attrs["id"]
    return msg


@dataclass(frozen=True)
class MessageReader:
    """One dialect's way of carrying messages, and the attribute keys it reads.

    The keys say which spans can hold messages at all (the DataFrame build skips the
    others) and which attributes are prompt or completion text (content capture off,
    redaction): one declaration, so a dialect that is read is also redacted.
    """

    read: Callable[[Mapping[str, Any]], list[Message] | None]
    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()


def _json_messages_at(key: str) -> MessageReader:
    return MessageReader(lambda a: _from_json_messages(a[key]) if key in a else None,
                         keys=(key,))


def _value_at(key: str, role: str) -> MessageReader:
    return MessageReader(lambda a: _from_value(a, key, role), keys=(key,))


#: message readers in order of preference; the first that finds messages wins
INPUT_READERS: tuple[MessageReader, ...] = (
    _json_messages_at(GEN_AI_INPUT_MESSAGES),
    MessageReader(lambda a: _from_openinference(a, "llm.input_messages."),
                  prefixes=("llm.input_messages.",)),
    MessageReader(lambda a: _from_openllmetry(a, "gen_ai.prompt."), prefixes=("gen_ai.prompt.",)),
    MessageReader(lambda a: _from_embedding_texts(a), prefixes=("embedding.embeddings.",)),
    _value_at("input.value", "user"),
    _value_at("traceloop.entity.input", "user"),
)
OUTPUT_READERS: tuple[MessageReader, ...] = (
    _json_messages_at(GEN_AI_OUTPUT_MESSAGES),
    MessageReader(lambda a: _from_openinference(a, "llm.output_messages."),
                  prefixes=("llm.output_messages.",)),
    MessageReader(lambda a: _from_openllmetry(a, "gen_ai.completion."),
                  prefixes=("gen_ai.completion.",)),
    _value_at("output.value", "assistant"),
    _value_at("traceloop.entity.output", "assistant"),
)
#: every key and key prefix a message reader looks at
MESSAGE_KEYS = frozenset(k for r in INPUT_READERS + OUTPUT_READERS for k in r.keys)
MESSAGE_PREFIXES = tuple(dict.fromkeys(p for r in INPUT_READERS + OUTPUT_READERS
                                       for p in r.prefixes))


def _from_embedding_texts(attrs: Mapping[str, Any]) -> list[Message] | None:
    """OpenInference embeddings: ``embedding.embeddings.N.embedding.text``."""
    groups = _indexed(attrs, "embedding.embeddings.")
    texts = [flat.get("embedding.text") for _, flat in sorted(groups.items())]
    return [{"role": "user", "content": to_text(t)} for t in texts if t is not None] or None


#: where each dialect puts a tool span's name, arguments, call id and result
TOOL_NAME_KEYS = (GEN_AI_TOOL_NAME, "tool.name", "tool_call.function.name",
                  "traceloop.entity.name")
TOOL_ARGS_KEYS = (GEN_AI_TOOL_CALL_ARGUMENTS, "tool_call.function.arguments",
                  "tool.parameters", "input.value", "traceloop.entity.input")
TOOL_ID_KEYS = (GEN_AI_TOOL_CALL_ID, "tool_call.id")
TOOL_RESULT_KEYS = (GEN_AI_TOOL_CALL_RESULT, "output.value", "traceloop.entity.output")

#: attribute keys (or key prefixes) that carry prompt / completion text: what the message
#: and tool readers read, and text no reader shows but that is content all the same
CONTENT_KEYS = MESSAGE_KEYS | {*TOOL_ARGS_KEYS, *TOOL_RESULT_KEYS,
                               GEN_AI_SYSTEM_INSTRUCTIONS}
CONTENT_PREFIXES = (*MESSAGE_PREFIXES, "llm.prompts.", "tool_call.function.arguments")


def _first_key(attrs: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if attrs.get(key) is not None:
            return attrs[key]
    return None


def tool_name(attrs: Any) -> str | None:
    """The name of the tool a span ran, in whichever dialect's key it is."""
    if not isinstance(attrs, Mapping):
        return None
    return to_text(_first_key(attrs, TOOL_NAME_KEYS))


def tool_messages(attrs: Mapping[str, Any], span_name: str) -> tuple[
        list[Message] | None, list[Message] | None]:
    """A tool span as a call (input) and its result (output), in the message normal form."""
    name = tool_name(attrs) or span_name
    call_id = to_text(_first_key(attrs, TOOL_ID_KEYS))
    raw_args = _first_key(attrs, TOOL_ARGS_KEYS)
    args = _loads(raw_args) if isinstance(raw_args, str) else raw_args
    if args is None and raw_args is not None:
        args = raw_args  # not JSON: keep the text as given
    args, wrapped_id = _langchain_tool_input(args)
    result, result_id = _langchain_tool_output(_first_key(attrs, TOOL_RESULT_KEYS))
    call_id = call_id or wrapped_id or result_id
    call: dict[str, Any] = {"id": call_id, "name": name, "arguments": args}
    inputs: list[Message] = [{"role": "assistant", "content": None, "tool_calls": [call]}]
    outputs: list[Message] | None = None
    if result is not None:
        out: Message = {"role": "tool", "content": as_text(result), "name": name}
        if call_id:
            out["tool_call_id"] = call_id
        outputs = [out]
    return inputs, outputs


def _langchain_tool_input(args: Any) -> tuple[Any, str | None]:
    """LangChain's tool-start payload, as OpenLLMetry records it, is a wrapper:
    ``{"input_str", "inputs": {...}, "kwargs": {"tool_call_id"}}``; the arguments are
    its ``inputs``."""
    if _is_mapping(args) and "input_str" in args and "inputs" in args:
        kwargs = args.get("kwargs")
        call_id = to_text(kwargs.get("tool_call_id")) if _is_mapping(kwargs) else None
        return args["inputs"], call_id
    return args, None


def _langchain_tool_output(result: Any) -> tuple[Any, str | None]:
    """A tool's result, out of LangChain's ToolMessage wrappers: OpenLLMetry's
    ``{"output": <ToolMessage or text>, "kwargs"}`` and OpenInference's
    ``{"type": "tool", "data": {"content", "tool_call_id"}}``; the call id with it."""
    parsed = _loads(result) if isinstance(result, str) and result.startswith("{") else result
    if not _is_mapping(parsed):
        return result, None
    if "output" in parsed and set(parsed) <= {"output", "kwargs"}:
        parsed = parsed["output"]
        if not _is_mapping(parsed):
            return parsed, None
    message: Any = parsed.get("kwargs") if parsed.get("lc") == 1 else parsed.get(
        "data") if parsed.get("type") == "tool" else None
    if _is_mapping(message) and "content" in message:
        return message["content"], to_text(message.get("tool_call_id"))
    return result, None


def is_content_key(key: str) -> bool:
    """Whether an attribute holds prompt or completion text."""
    return key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)


#: text attributes known to hold no prompt or completion text: what --redact and content
#: capture off let through (allow-list). Every other text attribute is treated as content.
#: Numbers and booleans always go: token counts, timings and flags are not content.
SAFE_KEYS = frozenset({
    *(k for keys in FIELD_KEYS.values() for k in keys),
    *(k for k, _ in KIND_KEYS),
    *TOOL_NAME_KEYS, *TOOL_ID_KEYS,
    "input.mime_type", "output.mime_type", GEN_AI_TOOL_TYPE, GEN_AI_AGENT_NAME,
    GEN_AI_AGENT_ID, GEN_AI_CONVERSATION_ID, "gen_ai.openai.api_base",
    "traceloop.workflow.name", "traceloop.entity.path", "logfire.span_type",
    "logfire.msg_template",
    # a judgement's name and label (its explanation is content)
    GEN_AI_EVALUATION_NAME, GEN_AI_EVALUATION_SCORE_LABEL,
    # the keys of message events' attributes that are not the text
    "role", "finish_reason", "index", "id",
})
SAFE_PREFIXES = (
    own_keys.PREFIX, "gen_ai.usage.", "gen_ai.request.", "gen_ai.response.",
    "gen_ai.openai.", "llm.token_count.", "llm.cost.", "llm.usage.", "http.", "url.",
    "server.", "client.", "net.", "network.", "service.", "telemetry.", "otel.", "code.",
    "thread.", "process.", "host.", "os.", "deployment.", "error.", "exception.",
    "anthropic.request.", "anthropic.message.", "anthropic.usage.", "openai.",
)


def is_content(key: str, value: Any) -> bool:
    """Whether an attribute may hold prompt or completion text: it holds text, under a
    key not known to be safe (an allow-list: a key no table knows counts as content)."""
    if isinstance(value, str):
        text = True
    else:
        text = isinstance(value, (list, tuple)) and any(isinstance(v, str) for v in value)
    return text and (is_content_key(key) or not (key in SAFE_KEYS
                                                 or key.startswith(SAFE_PREFIXES)))


def _from_value(attrs: Mapping[str, Any], key: str, role: str) -> list[Message] | None:
    """OpenInference ``input.value`` / ``output.value`` on spans without message lists."""
    value = attrs.get(key)
    if value is None:
        return None
    parsed = _loads(value) if attrs.get(key.replace(".value", ".mime_type")) == (
        "application/json") else None
    if isinstance(parsed, Mapping) and isinstance(parsed.get("messages"), list):
        return _from_json_messages(parsed["messages"])
    return [{"role": role, "content": to_text(value)}]


def messages(attrs: Mapping[str, Any], events: Iterable[Any] = (), kind: str = "other",
             span_name: str = "") -> tuple[list[Message] | None, list[Message] | None]:
    """The input and output messages of a span, from whichever dialect carries them."""
    if kind == "tool":
        return tool_messages(attrs, span_name)
    inputs = _first(INPUT_READERS, attrs)
    outputs = _first(OUTPUT_READERS, attrs)
    if inputs is None or outputs is None:
        ev_in, ev_out = _from_events(events)
        inputs = inputs if inputs is not None else ev_in
        outputs = outputs if outputs is not None else ev_out
    return inputs, outputs


def _first(readers: Sequence[MessageReader], attrs: Mapping[str, Any]
           ) -> list[Message] | None:
    for reader in readers:
        found = reader.read(attrs)
        if found:
            return found
    return None


# -- time to first token --------------------------------------------------------------------


def ttft_ms(fields: Mapping[str, Any], events: Sequence[Any], start_ns: int | None) -> float | None:
    """From ``time_to_first_chunk`` when given, else from the first chunk event."""
    ttft_s = fields.get("ttft_s")
    if ttft_s is not None:
        return ttft_s * 1000.0
    if start_ns is None:
        return None
    for name, timestamp, _ in events:
        if name in FIRST_CHUNK_EVENTS:
            return (timestamp - start_ns) / 1e6
    return None
