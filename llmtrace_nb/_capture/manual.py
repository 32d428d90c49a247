"""Manual spans without boilerplate: ``llmtrace_nb.span(name, kind=..., **attributes)``.

One object serves as a context manager and as a decorator of sync and async functions.
The span carries both vocabularies backends read — the GenAI conventions
(``gen_ai.operation.name``, ``gen_ai.tool.name``…) and OpenInference's
``openinference.span.kind`` — so Phoenix and Langfuse show the same kinds we do.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from .. import _current
from . import keys
from .genai import (
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
)

F = TypeVar("F", bound=Callable[..., Any])

#: kind → (gen_ai.operation.name, openinference.span.kind)
_KIND_ATTRIBUTES: dict[str, tuple[str | None, str]] = {
    "llm": ("chat", "LLM"),
    "embedding": ("embeddings", "EMBEDDING"),
    "tool": ("execute_tool", "TOOL"),
    "retrieval": ("retrieval", "RETRIEVER"),
    "agent": ("invoke_agent", "AGENT"),
    "chain": (None, "CHAIN"),
    "other": (None, "UNKNOWN"),
}
MAX_RECORDED_CHARS = 10_000


def _attribute(value: Any) -> AttributeValue:
    """OpenTelemetry accepts str/bool/int/float and homogeneous lists of them."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return list(value)
    return _json(value)


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text[:MAX_RECORDED_CHARS]


def _capture_content() -> bool:
    sess = _current.current()
    return sess.capture_content if sess is not None else True


class span:  # lower-case: it reads as a function at the call site
    """A span of the given kind, as ``with span(...):`` or ``@span(...)``.

    As a context manager it yields the OpenTelemetry span, so more attributes can be set
    on it. As a decorator (of a sync or an async function) it opens one span per call and,
    when content capture is on, records the function's arguments and return value as the
    span's input and output (``gen_ai.tool.call.arguments`` / ``.result`` for tools,
    ``input.value`` / ``output.value`` otherwise). The span carries both
    ``gen_ai.operation.name`` and ``openinference.span.kind`` (README, "Manual spans").

    Parameters
    ----------
    name : str
        The span name; for ``tool`` and ``agent`` spans also ``gen_ai.tool.name`` /
        ``gen_ai.agent.name``.
    kind : str, default "chain"
        One of ``tool``, ``retrieval``, ``agent``, ``chain``, ``llm``, ``embedding``,
        ``other``: the span's ``kind`` in ``spans_df()`` and the views.
    **attributes
        Span attributes. Strings, numbers, booleans and homogeneous lists of strings or
        of numbers are kept as they are; anything else as JSON (cut at 10,000
        characters). ``None`` values are left out.

    Raises
    ------
    ValueError
        ``name`` is empty or not a string, or ``kind`` is not one of the kinds above.

    Examples
    --------
    >>> import llmtrace_nb
    >>> @llmtrace_nb.span("get_weather", kind="tool")
    ... def get_weather(city: str) -> dict:
    ...     return {"city": city, "temp": 21}
    >>> with llmtrace_nb.span("retrieve", kind="retrieval", top_k=3) as s:  # doctest: +SKIP
    ...     docs = search(question)
    ...     s.set_attribute("hits", len(docs))
    """

    def __init__(self, name: str, kind: str = "chain", **attributes: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("span name must be a non-empty string")
        if kind not in _KIND_ATTRIBUTES:
            raise ValueError(f"unknown span kind {kind!r}; use one of "
                             f"{', '.join(_KIND_ATTRIBUTES)}")
        self.name = name
        self.kind = kind
        self.attributes = {k: _attribute(v) for k, v in attributes.items() if v is not None}

    def _base_attributes(self) -> dict[str, AttributeValue]:
        operation, oi_kind = _KIND_ATTRIBUTES[self.kind]
        attrs: dict[str, AttributeValue] = {keys.KIND: self.kind,
                                            "openinference.span.kind": oi_kind}
        if operation is not None:
            attrs[GEN_AI_OPERATION_NAME] = operation
        if self.kind == "tool":
            attrs[GEN_AI_TOOL_NAME] = self.name
        elif self.kind == "agent":
            attrs[GEN_AI_AGENT_NAME] = self.name
        attrs.update(self.attributes)
        return attrs

    @contextmanager
    def _open(self) -> Iterator[trace.Span]:
        tracer = trace.get_tracer("llmtrace_nb._capture.manual")
        with tracer.start_as_current_span(self.name, attributes=self._base_attributes()) as s:
            yield s

    def __enter__(self) -> trace.Span:
        self._cm = self._open()
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> bool | None:
        return self._cm.__exit__(*exc)

    def __call__(self, func: F) -> F:
        signature = inspect.signature(func)

        def record_input(s: trace.Span, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if not _capture_content():
                return
            try:
                bound = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:
                bound = {"args": args, "kwargs": kwargs}
            s.set_attribute(self._input_key, _json(dict(bound)))

        def record_output(s: trace.Span, result: Any) -> None:
            if _capture_content():
                s.set_attribute(self._output_key,
                                result if isinstance(result, str) else _json(result))

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._open() as s:
                    record_input(s, args, kwargs)
                    result = await func(*args, **kwargs)
                    record_output(s, result)
                    return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._open() as s:
                record_input(s, args, kwargs)
                result = func(*args, **kwargs)
                record_output(s, result)
                return result

        return wrapper  # type: ignore[return-value]

    @property
    def _input_key(self) -> str:
        return GEN_AI_TOOL_CALL_ARGUMENTS if self.kind == "tool" else "input.value"

    @property
    def _output_key(self) -> str:
        return GEN_AI_TOOL_CALL_RESULT if self.kind == "tool" else "output.value"

