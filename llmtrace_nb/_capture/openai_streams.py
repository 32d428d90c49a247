"""Streamed OpenAI calls that opentelemetry-instrumentation-openai 0.62 traces badly.

Checked with opentelemetry-instrumentation-openai 0.62.4 (OpenLLMetry) on openai 3.57. That
instrumentation wraps ``Completions.create`` / ``.parse`` and ``Responses.create`` (and the
async twins) and handles a ``Stream`` they return, but:

1. ``client.chat.completions.with_streaming_response.create(...)`` makes the client return
   an unread ``APIResponse`` instead of a ``Stream``. The instrumentation ends its span right
   away with the request only (no response model, id, usage or output), and the async
   variant calls ``AsyncAPIResponse.parse()`` without awaiting it ("coroutine ... was never
   awaited"), for ``stream=False`` too. ``client.responses.with_streaming_response.create(
   stream=True)`` -- what openai-agents uses for every streamed run -- gives no span at all.
2. No streamed call carries ``gen_ai.response.time_to_first_chunk``, and a streamed
   Responses span has no chunk events either, so it has no time to first token at all.
3. A streamed chat span has no ``gen_ai.usage.reasoning_tokens``, which the same call
   unstreamed has.
4. Each chunk of a streamed chat call adds an event ``gen_ai.content.completion.chunk``
   (no attributes) to its span: a 14-chunk answer carries 14. Only the first says
   anything (when the first token came, for readers without ``time_to_first_chunk``);
   the GenAI conventions define no chunk events, and each costs the caller ~15 µs.

:func:`patch` fixes these, leaving the instrumentation's own span making in charge:

* On the four ``*WithStreamingResponse`` classes it puts a data descriptor over ``create``
  (and chat's ``parse``). These are instance attributes set by the class's ``__init__``,
  bound to the resource when ``client.….with_streaming_response`` is first read; a data
  descriptor wins over them, so instances made before ``patch()`` are covered too, and
  deleting it brings the very same attribute back. The call still goes through openai's own
  ``to_streamed_response_wrapper``; when the context is entered, the instrumentation's
  wrapper function (the one installed on ``Completions.create`` etc., so its tracer and
  scope) runs with, as the wrapped call, the real request followed by ``parse()``: a
  ``Stream`` for ``stream=True``, which the instrumentation wraps in its ``ChatStream`` /
  ``ResponseStream`` as for ``create(stream=True)``, or the parsed body for ``stream=False``
  (read when the context is entered, as an ordinary call does), which gets the ordinary
  full span. The instrumentation does not see openai's internal ``X-Stainless-Raw-Response``
  header (it would record it as ``gen_ai.headers``), so the span has the same attributes as
  the ordinary call's. For a stream the caller gets the ``APIResponse`` behind a proxy whose
  ``parse()`` returns that instrumented stream and whose ``close()`` (what leaving the
  context calls) ends the span with what was read. One call, one span, ended when the body
  has been read or the context left.
* It wraps ``ChatStream._process_item`` and ``ResponseStream._process_chunk``, the
  instrumentation's per-chunk hooks (under a microsecond a chunk; a class-level flag marks
  a stream done), to set ``gen_ai.response.time_to_first_chunk``
  (seconds from span start) at the first chunk with a choice (chat) or the first output
  event, ``response.output_item.added`` or a ``*.delta`` (Responses: ``response.created``
  and ``response.in_progress`` come before the model has produced anything), and the
  reasoning tokens of a chat usage chunk. Past a chat stream's first token the hook adds
  the chunk to the response as the instrumentation does, without its event, so a span
  keeps the chunk events up to its first token. A plain chunk — one choice with text, a
  role or a finish reason, or the usage alone (nearly all of them) — is added from its
  fields, without the instrumentation's pydantic dump of the whole chunk
  (``_add_plain_chunk``, also put in place of the instrumentation's
  ``_accumulate_stream_items``, which ChatStream calls on the first chunk; the rest go
  through the instrumentation's own function). Every streamed call goes through these:
  ``create(stream=True)``, the ``.stream()`` helpers and ``with_streaming_response``.

Ordinary calls do not go through anything added here. ``patch()`` is idempotent; its
return value undoes it. If openai or the instrumentation is missing or not shaped as
expected (another version), ``patch()`` changes nothing and returns a no-op; at call time,
a resource whose method is not wrapped by this instrumentation (not instrumented, or
instrumented by another package) gets the client's own behaviour. Nothing here raises into
the caller: the request's own errors propagate as they would without it.

Not covered: a ``with_streaming_response`` stream read raw (``iter_lines()``, ``read()``)
instead of through ``parse()`` gets a span with the request only, ended when the context is
left.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from wrapt import ObjectProxy

from .genai import GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK as TIME_TO_FIRST_CHUNK
from .genai import OPENLLMETRY_REASONING_TOKENS as REASONING_TOKENS

__all__ = ["REASONING_TOKENS", "TIME_TO_FIRST_CHUNK", "patch"]

_log = logging.getLogger(__name__)


_INSTRUMENTATION = "opentelemetry.instrumentation.openai"
_CHAT_WRAPPERS = _INSTRUMENTATION + ".shared.chat_wrappers"
_RESPONSES_WRAPPERS = _INSTRUMENTATION + ".v1.responses_wrappers"
#: an attribute on everything patch() installs, so a second patch() (even from a reloaded
#: copy of this module) recognises it
_MARK = "_llmtrace_openai_streams"
#: set on an instrumented stream proxy at its first chunk (wrapt keeps ``_self_`` attributes
#: on the proxy itself); False on the proxy classes while patched, so that reading it before
#: is not a failed lookup forwarded to the wrapped stream
_SEEN = "_self_llmtrace_first_chunk"
# ChatStream sets its _complete_response after wrapt's rules, on the wrapped stream: read
# through the proxy it is a failed lookup (an AttributeError raised and caught) before
# the wrapped one, on every chunk. The hook keeps it here, on the proxy, at the first chunk
# (the instrumentation makes it once, in __init__, and only adds to it).
_RESPONSE = "_self_llmtrace_response"

# (module, class, attribute holding the resource, methods, async)
_STREAMING_CLASSES = (
    ("openai.resources.chat.completions.completions", "CompletionsWithStreamingResponse",
     "_completions", ("create", "parse"), False),
    ("openai.resources.chat.completions.completions", "AsyncCompletionsWithStreamingResponse",
     "_completions", ("create", "parse"), True),
    ("openai.resources.responses.responses", "ResponsesWithStreamingResponse",
     "_responses", ("create",), False),
    ("openai.resources.responses.responses", "AsyncResponsesWithStreamingResponse",
     "_responses", ("create",), True),
)


def _noop() -> None:
    """The undo of a ``patch()`` that changed nothing."""


# -- the pieces patch() needs, imported and checked once --------------------------------


@dataclass(frozen=True)
class _Kit:
    api_response: type[Any]
    async_api_response: type[Any]
    to_streamed: Callable[..., Any]
    async_to_streamed: Callable[..., Any]
    chat_stream: type[Any]
    response_stream: type[Any]
    #: the header openai's ``to_streamed_response_wrapper`` adds to mark the call
    raw_header: str
    #: what ChatStream does with each chunk besides its event: adds it to the response
    accumulate: Callable[[Any, Any], Any]
    #: openai's ChatCompletionChunk, whose plain chunks are added without ``accumulate``
    chunk_type: type[Any]

    def finish(self, stream: Any) -> None:
        """End an instrumented stream's span with what has been read so far (idempotent)."""
        try:
            if isinstance(stream, self.chat_stream):
                stream._ensure_cleanup()
            elif isinstance(stream, self.response_stream):
                # Like its __exit__: uses the response.completed event if it was read.
                stream._process_complete_response()
        except Exception:
            _log.debug("could not end the span of a streamed OpenAI response", exc_info=True)

    def is_stream(self, value: Any) -> bool:
        return isinstance(value, (self.chat_stream, self.response_stream))


def _has_method(cls: type, name: str, params: int | None = None) -> bool:
    """``cls`` defines function ``name`` (not one of ours), taking ``params`` arguments."""
    value = vars(cls).get(name)
    if not inspect.isfunction(value) or hasattr(value, _MARK):
        return False
    return params is None or len(inspect.signature(value).parameters) == params


def _load_kit() -> _Kit | None:
    response_module = importlib.import_module("openai._response")
    constants = importlib.import_module("openai._constants")
    chat_module = importlib.import_module(_CHAT_WRAPPERS)
    responses_module = importlib.import_module(_RESPONSES_WRAPPERS)
    kit = _Kit(
        api_response=response_module.APIResponse,
        async_api_response=response_module.AsyncAPIResponse,
        to_streamed=response_module.to_streamed_response_wrapper,
        async_to_streamed=response_module.async_to_streamed_response_wrapper,
        chat_stream=chat_module.ChatStream,
        response_stream=responses_module.ResponseStream,
        raw_header=constants.RAW_RESPONSE_HEADER,
        accumulate=chat_module._accumulate_stream_items,
        chunk_type=importlib.import_module("openai.types.chat").ChatCompletionChunk,
    )
    expected = (
        isinstance(kit.raw_header, str)
        and callable(kit.to_streamed) and callable(kit.async_to_streamed)
        and inspect.isfunction(kit.accumulate)
        and len(inspect.signature(kit.accumulate).parameters) == 2
        and isinstance(kit.chunk_type, type)
        and _has_method(kit.chat_stream, "_process_item", 2)
        and _has_method(kit.chat_stream, "_ensure_cleanup")  # behind dont_throw: (*a, **kw)
        and "_span" in vars(kit.chat_stream)
        and _has_method(kit.response_stream, "_process_chunk", 2)
        and _has_method(kit.response_stream, "_process_complete_response")
        and "_span" in vars(kit.response_stream)
        and _SEEN not in vars(kit.chat_stream) and _SEEN not in vars(kit.response_stream)
    )
    return kit if expected else None


# -- with_streaming_response --------------------------------------------------------------


def _instrumented(resource: Any, name: str) -> Any:
    """The instrumentation's wrapt wrapper of ``type(resource).name``, else None."""
    for klass in type(resource).__mro__:
        if name in vars(klass):
            value = vars(klass)[name]
            break
    else:
        return None
    wrapper = getattr(value, "_self_wrapper", None)
    module = getattr(wrapper, "__module__", None) or ""
    if (module == _INSTRUMENTATION or module.startswith(_INSTRUMENTATION + ".")) and hasattr(
            value, "__wrapped__"):
        return value
    return None


def _hide_marker(kit: _Kit, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """``kwargs`` without openai's raw-response header, and its value (None if absent).

    The instrumentation records ``extra_headers`` as ``gen_ai.headers``; an ordinary call
    has none, so the span would differ by this SDK-internal marker.
    """
    headers = kwargs.get("extra_headers")
    if not isinstance(headers, dict) or kit.raw_header not in headers:
        return kwargs, None
    headers = dict(headers)
    value = headers.pop(kit.raw_header)
    kwargs = dict(kwargs)
    if headers:
        kwargs["extra_headers"] = headers
    else:
        del kwargs["extra_headers"]
    return kwargs, value


def _restore_marker(kit: _Kit, kwargs: dict[str, Any], value: Any) -> dict[str, Any]:
    if value is None:
        return kwargs
    headers = dict(kwargs.get("extra_headers") or {})
    headers[kit.raw_header] = value
    return {**kwargs, "extra_headers": headers}


def _parse(kit: _Kit, response: Any) -> Any:
    """What the instrumentation should see: the parsed body (a ``Stream`` if streamed)."""
    if not isinstance(response, kit.api_response):
        return response
    try:
        return response.parse()
    except Exception:
        # the caller's own parse() raises it again; the instrumentation gets nothing to read
        return None


async def _aparse(kit: _Kit, response: Any) -> Any:
    if not isinstance(response, kit.async_api_response):
        return response
    try:
        return await response.parse()
    except Exception:
        return None


def _request(kit: _Kit, resource: Any, wrapped: Any, *args: Any, **kwargs: Any) -> Any:
    """The streaming-response request, made through the instrumentation's wrapper."""
    method = wrapped.__wrapped__.__get__(resource, type(resource))
    kwargs, marker = _hide_marker(kit, kwargs)
    raw: list[Any] = []

    def call(*a: Any, **kw: Any) -> Any:
        response = method(*a, **_restore_marker(kit, kw, marker))
        raw.append(response)
        return _parse(kit, response)

    try:
        result = wrapped._self_wrapper(call, resource, args, kwargs)
    except Exception:
        if not raw:  # the request failed: its error, as without us
            raise
        _log.debug("the OpenAI instrumentation failed after the request", exc_info=True)
        return raw[0]
    if not raw:  # the wrapper did not make the request (not expected)
        return method(*args, **_restore_marker(kit, kwargs, marker))
    if kit.is_stream(result):
        return _StreamedResponse(raw[0], result, kit)
    return raw[0]


async def _arequest(kit: _Kit, resource: Any, wrapped: Any, *args: Any, **kwargs: Any) -> Any:
    method = wrapped.__wrapped__.__get__(resource, type(resource))
    kwargs, marker = _hide_marker(kit, kwargs)
    raw: list[Any] = []

    async def call(*a: Any, **kw: Any) -> Any:
        response = await method(*a, **_restore_marker(kit, kw, marker))
        raw.append(response)
        return await _aparse(kit, response)

    try:
        result = await wrapped._self_wrapper(call, resource, args, kwargs)
    except Exception:
        if not raw:
            raise
        _log.debug("the OpenAI instrumentation failed after the request", exc_info=True)
        return raw[0]
    if not raw:
        return await method(*args, **_restore_marker(kit, kwargs, marker))
    if kit.is_stream(result):
        return _AsyncStreamedResponse(raw[0], result, kit)
    return raw[0]


class _StreamedResponse(ObjectProxy):
    """An ``APIResponse`` whose ``parse()`` is the instrumented stream and whose ``close()``
    (called when the ``with`` block is left) ends its span."""

    def __init__(self, response: Any, stream: Any, kit: _Kit) -> None:
        super().__init__(response)
        self._self_stream = stream
        self._self_kit = kit

    def parse(self, *, to: Any = None) -> Any:
        if to is None:
            return self._self_stream
        return self.__wrapped__.parse(to=to)

    def close(self) -> None:
        self._self_kit.finish(self._self_stream)
        self.__wrapped__.close()

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


class _AsyncStreamedResponse(ObjectProxy):
    """The ``AsyncAPIResponse`` counterpart of :class:`_StreamedResponse`."""

    def __init__(self, response: Any, stream: Any, kit: _Kit) -> None:
        super().__init__(response)
        self._self_stream = stream
        self._self_kit = kit

    async def parse(self, *, to: Any = None) -> Any:
        if to is None:
            return self._self_stream
        return await self.__wrapped__.parse(to=to)

    async def close(self) -> None:
        self._self_kit.finish(self._self_stream)
        await self.__wrapped__.close()

    def __repr__(self) -> str:
        return repr(self.__wrapped__)


class _StreamingMethod:
    """Stands over one method of a ``*WithStreamingResponse`` class; see the module doc.

    The class's ``__init__`` sets the method as an instance attribute; as a data descriptor
    this keeps it in the instance's ``__dict__`` and wins over it on lookup.
    """

    def __init__(self, kit: _Kit, name: str, resource_attr: str, is_async: bool) -> None:
        self.kit = kit
        self.name = name
        self.resource_attr = resource_attr
        self.is_async = is_async
        setattr(self, _MARK, True)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value

    def __delete__(self, obj: Any) -> None:
        try:
            del obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            original = obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        try:
            resource = obj.__dict__.get(self.resource_attr)
            wrapped = _instrumented(resource, self.name) if resource is not None else None
            if wrapped is None:
                return original
            request = _arequest if self.is_async else _request
            to_streamed = self.kit.async_to_streamed if self.is_async else self.kit.to_streamed
            method = to_streamed(functools.partial(request, self.kit, resource, wrapped))
            return functools.update_wrapper(method, original)
        except Exception:
            _log.debug("with_streaming_response.%s left as is", self.name, exc_info=True)
            return original


# -- time to first chunk ------------------------------------------------------------------


def _first_chunk(stream: Any) -> None:
    """Set time_to_first_chunk on the stream's span; once per stream."""
    setattr(stream, _SEEN, True)
    span = stream._span
    start = getattr(span, "start_time", None)
    if isinstance(start, int) and span.is_recording():
        span.set_attribute(TIME_TO_FIRST_CHUNK, (time.time_ns() - start) / 1e9)


def _chat_reasoning(stream: Any, chunk: Any) -> None:
    usage = getattr(chunk, "usage", None)
    if usage is None:
        return
    details = getattr(usage, "completion_tokens_details", None)
    reasoning = getattr(details, "reasoning_tokens", None)
    span = stream._span
    if isinstance(reasoning, int) and span.is_recording():
        span.set_attribute(REASONING_TOKENS, reasoning)


def _hook_chat_item(original: Callable[[Any, Any], Any], accumulate: Callable[[Any, Any], Any],
                    chunk_type: type[Any]) -> Callable[[Any, Any], Any]:
    @functools.wraps(original)
    def _process_item(self: Any, item: Any) -> Any:
        seen = getattr(self, _SEEN, False)
        if seen:  # past the first token the instrumentation's step adds only an event (4.)
            response = self._self_llmtrace_response  # _RESPONSE, read as an attribute
            added = _add_plain_chunk(item, response, chunk_type)
            if added and item.usage is None:
                return None  # no usage, so no reasoning tokens either
        try:
            if not seen and getattr(item, "choices", None):
                setattr(self, _RESPONSE, self._complete_response)  # before the flag
                _first_chunk(self)
            _chat_reasoning(self, item)
        except Exception:
            _log.debug("time to first chunk not recorded", exc_info=True)
        if seen:
            if not added:
                accumulate(item, response)
            return None
        return original(self, item)

    setattr(_process_item, _MARK, True)
    return _process_item


def _add_plain_chunk(item: Any, response: dict[str, Any], chunk_type: type[Any]) -> bool:
    """Add a plain chunk to the response as the instrumentation's
    ``_accumulate_stream_items`` does, reading the chunk's fields instead of first turning
    the whole chunk into a dict with pydantic (half of that function's ~6 µs a chunk).

    Plain: one choice with text, a role or a finish reason (nearly every chunk; the
    first of a choice begins it, as the instrumentation does), or no choice and the usage
    (the last chunk, with ``include_usage``). False, with the response untouched, for any
    other chunk: tool calls, fields the model does not declare (a provider's
    ``reasoning_content``, filter results, usage inside a choice), two choices, a
    choice out of order, a dict."""
    if type(item) is not chunk_type or item.__pydantic_extra__:
        return False
    choices = item.choices
    if not choices:
        usage = item.usage
        if usage is None:
            return False
        response["model"] = item.model
        response["id"] = item.id
        response["usage"] = usage.model_dump()  # as it sits in the dump of the chunk
        return True
    if item.usage or len(choices) != 1:
        return False
    choice = choices[0]
    delta = choice.delta
    begun = response["choices"]
    index = choice.index
    if (choice.__pydantic_extra__ or delta is None or delta.__pydantic_extra__
            or delta.tool_calls or type(index) is not int or index > len(begun)):
        return False
    response["model"] = item.model
    response["id"] = item.id
    if index == len(begun):
        begun.append({"index": index, "message": {"content": "", "role": ""}})
    target = begun[index]
    if choice.finish_reason:
        target["finish_reason"] = choice.finish_reason
    if delta.content:
        target["message"]["content"] += delta.content
    if delta.role:
        target["message"]["role"] = delta.role
    return True


def _quick_accumulate(accumulate: Callable[[Any, Any], Any],
                      chunk_type: type[Any]) -> Callable[[Any, Any], Any]:
    """The instrumentation's ``_accumulate_stream_items`` with plain chunks added from
    their fields: what ChatStream's own ``_process_item`` calls on a stream's first chunk
    (our hook takes the later ones)."""
    @functools.wraps(accumulate)
    def _accumulate_stream_items(item: Any, complete_response: Any) -> Any:
        if type(complete_response) is dict and _add_plain_chunk(item, complete_response,
                                                                chunk_type):
            return None
        return accumulate(item, complete_response)

    setattr(_accumulate_stream_items, _MARK, True)
    return _accumulate_stream_items


def _is_output_event(chunk: Any) -> bool:
    kind = getattr(chunk, "type", None)
    return isinstance(kind, str) and (
        kind == "response.output_item.added" or kind.endswith(".delta"))


def _hook_response_chunk(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    @functools.wraps(original)
    def _process_chunk(self: Any, chunk: Any) -> Any:
        try:
            if not getattr(self, _SEEN, False) and _is_output_event(chunk):
                _first_chunk(self)
        except Exception:
            _log.debug("time to first chunk not recorded", exc_info=True)
        return original(self, chunk)

    setattr(_process_chunk, _MARK, True)
    return _process_chunk


# -- patch / undo -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    owner: type | ModuleType
    name: str
    before: Any  # _ABSENT when the class had no such attribute
    after: Any


_ABSENT = object()


def _plan() -> list[_Change] | None:
    """Every change patch() makes, or None when something is not as expected."""
    kit = _load_kit()
    if kit is None:
        return None
    changes: list[_Change] = []
    for module_name, class_name, resource_attr, names, is_async in _STREAMING_CLASSES:
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if not isinstance(cls, type):
            return None
        for name in names:
            if name in vars(cls):  # expected only on instances; or already ours
                return None
            changes.append(_Change(cls, name, _ABSENT,
                                   _StreamingMethod(kit, name, resource_attr, is_async)))
    chat_item = vars(kit.chat_stream)["_process_item"]
    response_chunk = vars(kit.response_stream)["_process_chunk"]
    # the flags' defaults before the hooks that read them (undone in reverse order)
    changes.append(_Change(kit.chat_stream, _SEEN, _ABSENT, False))
    changes.append(_Change(kit.response_stream, _SEEN, _ABSENT, False))
    changes.append(_Change(kit.chat_stream, "_process_item", chat_item,
                           _hook_chat_item(chat_item, kit.accumulate, kit.chunk_type)))
    chat_module = importlib.import_module(_CHAT_WRAPPERS)
    changes.append(_Change(chat_module, "_accumulate_stream_items", kit.accumulate,
                           _quick_accumulate(kit.accumulate, kit.chunk_type)))
    changes.append(_Change(kit.response_stream, "_process_chunk", response_chunk,
                           _hook_response_chunk(response_chunk)))
    return changes


def _revert(changes: list[_Change]) -> None:
    for change in reversed(changes):
        try:
            if vars(change.owner).get(change.name) is not change.after:
                continue  # replaced since by someone else: theirs now
            if change.before is _ABSENT:
                delattr(change.owner, change.name)
            else:
                setattr(change.owner, change.name, change.before)
        except Exception:
            _log.debug("could not restore %s.%s", change.owner.__name__, change.name,
                       exc_info=True)


_lock = threading.Lock()
_undo: Callable[[], None] | None = None


def patch() -> Callable[[], None]:
    """Fill the instrumentation's streaming gaps (module docstring); returns the undo.

    Call after ``OpenAIInstrumentor().instrument(...)``. A second call changes nothing and
    returns the same undo. When openai or the instrumentation is not as expected, nothing is
    patched and the undo is a no-op. Never raises.
    """
    global _undo
    with _lock:
        if _undo is not None:
            return _undo
        try:
            changes = _plan()
        except Exception:
            _log.debug("OpenAI streaming fixes not applied", exc_info=True)
            return _noop
        if changes is None:
            _log.debug("OpenAI streaming fixes not applied: unexpected openai or "
                       "opentelemetry-instrumentation-openai internals")
            return _noop
        applied: list[_Change] = []
        try:
            for change in changes:
                setattr(change.owner, change.name, change.after)
                applied.append(change)
        except Exception:
            _log.debug("OpenAI streaming fixes not applied", exc_info=True)
            _revert(applied)
            return _noop

        def undo() -> None:
            global _undo
            with _lock:
                _revert(changes)
                if _undo is undo:
                    _undo = None

        _undo = undo
        return undo
