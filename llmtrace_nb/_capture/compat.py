"""Workarounds for other packages' quirks, each in one place with the reason."""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

# with the dot: the contrib instrumentation's package, "openai_v2", must not match
_OPENAI_INSTRUMENTATION = "opentelemetry.instrumentation.openai."


def unwrap_openai() -> int:
    """Remove opentelemetry-instrumentation-openai's wrappers from the OpenAI client.

    Its ``uninstrument()`` (0.62) calls ``unwrap("openai.resources.chat.completions",
    "Completions.create")``, which splits the first argument into module and class at the
    last dot and so looks for an attribute ``"Completions.create"`` on a module: nothing is
    unwrapped and every call keeps making spans after ``%unload_ext``. This walks the
    loaded ``openai.resources`` classes and restores each method wrapped by that package.
    Returns how many methods were restored.
    """
    restored = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("openai.resources") or module is None:
            continue
        for cls in list(vars(module).values()):
            if not isinstance(cls, type) or cls.__module__ != name:
                continue
            for attr, value in list(vars(cls).items()):
                wrapper = getattr(value, "_self_wrapper", None)
                if wrapper is not None and getattr(wrapper, "__module__", "").startswith(
                        _OPENAI_INSTRUMENTATION):
                    setattr(cls, attr, value.__wrapped__)
                    restored += 1
    return restored


def otel_content_value(on: bool) -> str:
    """The value of OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT that means ``on``.

    The contrib GenAI instrumentations take ``true``/``false`` in their default mode, but
    with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` only ``NO_CONTENT``,
    ``SPAN_ONLY``, ``EVENT_ONLY`` or ``SPAN_AND_EVENT`` (anything else means no content).
    """
    if "gen_ai_latest_experimental" in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", ""):
        return "SPAN_AND_EVENT" if on else "NO_CONTENT"
    return "true" if on else "false"


def sdk_provider(provider: Any) -> TracerProvider | None:
    """The SDK ``TracerProvider`` behind ``provider``: itself, or the one a proxy wraps.

    logfire sets a ``ProxyTracerProvider`` of its own (neither OpenTelemetry's proxy nor
    an SDK provider) as the global provider; the SDK provider it forwards to is its
    ``provider`` attribute, which a second ``logfire.configure()`` replaces.
    """
    for _ in range(3):
        if isinstance(provider, TracerProvider):
            return provider
        provider = getattr(provider, "provider", None)
        if provider is None:
            return None
    return None


def library_providers() -> list[tuple[str, TracerProvider]]:
    """SDK providers that libraries keep for themselves, found without importing them.

    logfire configured after another provider became the global one (the global can be
    set once) keeps its spans, and pydantic-ai's when logfire instruments it, in a
    provider of its own: the one its configuration holds.
    """
    found: list[tuple[str, TracerProvider]] = []
    logfire = sys.modules.get("logfire")
    if logfire is not None:
        try:
            config = logfire.DEFAULT_LOGFIRE_INSTANCE.config
            provider = sdk_provider(config.get_tracer_provider()) if getattr(
                config, "_initialized", True) else None
        except Exception:  # another logfire release: look no further
            provider = None
        if provider is not None:
            found.append(("logfire", provider))
    return found


def tracing_libraries() -> list[str]:
    """Libraries that trace themselves without an OpenTelemetry instrumentor (which
    ``session.active_instrumentations`` lists), when imported and switched on."""
    found = []
    pydantic_ai = sys.modules.get("pydantic_ai")
    if pydantic_ai is not None and getattr(getattr(pydantic_ai, "Agent", None),
                                           "_instrument_default", False):
        found.append("pydantic-ai")
    if "anthropic" in sys.modules and os.environ.get(
            "ANTHROPIC_OPEN_TELEMETRY", "").lower() != "false":
        found.append("anthropic SDK")
    if library_providers():
        found.append("logfire")
    return found


#: the OpenAI instrumentation's modules that skip a call when LangChain's flag is set
_SUPPRESSING_MODULES = ("chat_wrappers", "completion_wrappers", "embeddings_wrappers",
                        "image_gen_wrappers")
_SUPPRESS_NAME = "SUPPRESS_LANGUAGE_MODEL_INSTRUMENTATION_KEY"


def unsuppress_openai() -> Callable[[], None]:
    """Let opentelemetry-instrumentation-openai trace calls a framework asked it to skip.

    OpenLLMetry's LangChain instrumentation sets the context flag
    ``suppress_language_model_instrumentation`` around a model run, so the OpenAI client's
    span of the call is never made and only LangChain's remains — without the dated
    response model, the streaming flag or a time to first token. llmtrace_nb counts the
    two spans of one call once (calls.py), so it wants the client's. Each wrapper module
    looks the flag up under the name it imported; pointing that name at a key nobody
    sets lets the client's span be made (the general suppression key still works).
    Returns what puts the names back.
    """
    changed: list[tuple[Any, Any]] = []
    for name in _SUPPRESSING_MODULES:
        module = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}shared.{name}")
        if module is not None and isinstance(getattr(module, _SUPPRESS_NAME, None), str):
            changed.append((module, getattr(module, _SUPPRESS_NAME)))
            setattr(module, _SUPPRESS_NAME, "llmtrace_nb: not suppressed by frameworks")

    def undo() -> None:
        for module, value in changed:
            setattr(module, _SUPPRESS_NAME, value)
        changed.clear()

    return undo


def chat_request_of(coro: Any) -> tuple[Any, dict[str, Any], Any] | None:
    """The ``(span, kwargs, instance)`` a not yet started ``_handle_request`` coroutine of
    the OpenAI instrumentation was called with, or None if it does not look like one.
    The coroutine is its ``dont_throw`` wrapper's, whose frame holds them as ``args``."""
    frame = getattr(coro, "cr_frame", None)
    found = frame.f_locals if frame is not None else {}
    args = found.get("args")
    if isinstance(args, tuple) and len(args) == 3 and not found.get("kwargs"):
        span, kwargs, instance = args
    else:  # the undecorated coroutine
        span, kwargs, instance = (found.get(k) for k in ("span", "kwargs", "instance"))
    return (span, kwargs, instance) if isinstance(kwargs, dict) else None


def has_base64_image(kwargs: dict[str, Any], is_image: Callable[[Any], bool]) -> bool:
    """Whether a chat request's messages carry an image the instrumentation uploads."""
    return any(isinstance(m, dict) and isinstance(m.get("content"), list)
               and any(is_image(item) for item in m["content"])
               for m in kwargs.get("messages") or ())


def inline_openai_requests() -> Callable[[], None]:
    """Record a chat call's request without an event loop per call.

    opentelemetry-instrumentation-openai 0.62 records a sync chat call's request
    attributes in a coroutine (``_handle_request``) that it runs with ``asyncio.run``:
    a new event loop for every call, and inside a running loop — every Jupyter cell runs
    in one — a new thread as well. That cost more than all the rest of tracing a call
    (~1 ms). The coroutine only waits for something when a base64 image is uploaded
    (``upload_base64_image``); otherwise it runs to its end at the first step, so it is
    stepped here directly, and handed to the instrumentation's runner as before when
    the messages hold an image. Returns what puts the runner back.
    """
    module = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}shared.chat_wrappers")
    original = getattr(module, "run_async", None)
    has_image = getattr(module, "_is_base64_image", None)
    if module is None or not callable(original) or not callable(has_image):
        return lambda: None

    def run_inline(coro: Any) -> None:
        request = chat_request_of(coro)
        if request is None or has_base64_image(request[1], has_image):
            original(coro)  # an upload may really wait: its own way
            return
        try:
            coro.send(None)
        except StopIteration:
            return
        coro.close()  # it waited after all: give up recording, never block the call

    setattr(module, "run_async", run_inline)  # noqa: B010 - a module found at run time

    def undo() -> None:
        if getattr(module, "run_async", None) is run_inline:
            setattr(module, "run_async", original)  # noqa: B010

    return undo


# Names opentelemetry-instrumentation-openai 0.62 calls on every request to compare
# openai's version with a fixed one, parsing both version strings with `packaging` each
# time (~40 µs a call). Each of its modules imported them by name.
_VERSION_CHECKS = ("is_openai_v1", "is_reasoning_supported")


def undo_all(undos: list[Callable[[], None]]) -> Callable[[], None]:
    """One undo for several changes: the last made is undone first."""
    def undo() -> None:
        for one in reversed(undos):
            one()

    return undo


def _swap_imported(name: str, original: Any, replacement: Any) -> Callable[[], None]:
    """Point ``name`` at ``replacement`` in every loaded module of the OpenAI
    instrumentation that imported ``original`` under it (each module binds the names it
    imports, so patching the defining module alone changes nothing for the others).
    Returns what puts ``original`` back where ``replacement`` still is."""
    swapped = []
    for module_name, module in list(sys.modules.items()):
        if (module_name.startswith(_OPENAI_INSTRUMENTATION) and module is not None
                and getattr(module, name, None) is original):
            setattr(module, name, replacement)
            swapped.append(module)

    def undo() -> None:
        for module in swapped:
            if getattr(module, name, None) is replacement:
                setattr(module, name, original)
        swapped.clear()

    return undo


def cache_openai_version_checks() -> Callable[[], None]:
    """Answer the OpenAI instrumentation's version checks once: the installed openai does
    not change while the process runs. Returns what puts the checks back."""
    utils = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}utils")
    undos = []
    for name in _VERSION_CHECKS:
        check = getattr(utils, name, None)
        if callable(check):
            answer = check()
            undos.append(_swap_imported(name, check, lambda answer=answer: answer))
    return undo_all(undos)


# The OpenAI instrumentation records six metrics per call (token and duration histograms,
# choice counts, TTFT) unless TRACELOOP_METRICS_ENABLED says false; it reads the variable
# once, when instrumented. With no SDK MeterProvider set, every one of them goes to a
# no-op meter: the work of building their attributes is spent for nobody.
_METRICS_ENV = "TRACELOOP_METRICS_ENABLED"


def openai_metrics_read() -> bool:
    """Would anyone read the OpenAI instrumentation's metrics: a MeterProvider of the SDK
    (or another real one) is set globally, or the user set TRACELOOP_METRICS_ENABLED."""
    from opentelemetry import metrics

    if _METRICS_ENV in os.environ:
        return True
    # the API's defaults: the proxy handed out before any provider is set, and the no-op
    return type(metrics.get_meter_provider()).__name__ not in (
        "_ProxyMeterProvider", "NoOpMeterProvider")


def skip_unread_chat_metrics() -> Callable[[], None]:
    """Skip the metric attributes a non-streamed chat call builds when it has no
    instruments to record them with.

    With its metrics off the OpenAI instrumentation still calls ``_set_chat_metrics``
    after every call, which builds the metrics' shared attributes (the client's base URL
    turned into a string among them) before finding each instrument is None. Returns
    what puts the function back."""
    module = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}shared.chat_wrappers")
    original = getattr(module, "_set_chat_metrics", None)
    if module is None or not callable(original):
        return lambda: None

    def set_chat_metrics(instance: Any, token_counter: Any, choice_counter: Any,
                         duration_histogram: Any, *rest: Any, **kw: Any) -> None:
        if token_counter is None and choice_counter is None and duration_histogram is None:
            return
        original(instance, token_counter, choice_counter, duration_histogram, *rest, **kw)

    setattr(module, "_set_chat_metrics", set_chat_metrics)  # noqa: B010

    def undo() -> None:
        if getattr(module, "_set_chat_metrics", None) is set_chat_metrics:
            setattr(module, "_set_chat_metrics", original)  # noqa: B010

    return undo


def skip_unread_stream_metrics() -> Callable[[], None]:
    """The same for a streamed chat call: its end builds the metrics' shared attributes
    (the base URL made a string again) for a token counter that is None. With no
    instrument at all on the stream, they are empty. Returns what puts them back."""
    module = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}shared.chat_wrappers")
    stream = getattr(module, "ChatStream", None)
    original = vars(stream).get("_shared_attributes") if isinstance(stream, type) else None
    if not callable(original):
        return lambda: None
    instruments = ("_token_counter", "_choice_counter", "_duration_histogram",
                   "_streaming_time_to_first_token", "_streaming_time_to_generate")

    def shared_attributes(self: Any) -> Any:
        if all(getattr(self, name, None) is None for name in instruments):
            return {}
        return original(self)

    setattr(stream, "_shared_attributes", shared_attributes)  # noqa: B010

    def undo() -> None:
        if vars(stream).get("_shared_attributes") is shared_attributes:
            setattr(stream, "_shared_attributes", original)  # noqa: B010

    return undo


def quick_openai_attributes() -> Callable[[], None]:
    """Set the OpenAI instrumentation's plain attributes through sdk.PLAIN_SETTER.

    Every attribute it records goes through its ``_set_span_attribute``: skip None, ""
    and openai's NOT_GIVEN (looked up on the module each time), then ``set_attribute``
    with its two locks — ~20 µs of a call's tracing for two dozen attributes. Its modules
    imported the function by name; each gets one that makes the same checks and writes
    a str, bool, int or float straight into the span where the SDK's fields were checked
    to allow it (anything else still goes through ``set_attribute``). Returns what puts
    the original back."""
    from .sdk import PLAIN_SETTER

    shared = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}shared")
    original = getattr(shared, "_set_span_attribute", None)
    if PLAIN_SETTER is None or not callable(original):
        return lambda: None
    set_plain = PLAIN_SETTER
    not_given = getattr(sys.modules.get("openai"), "NOT_GIVEN", None)

    def set_span_attribute(span: Any, name: str, value: Any) -> None:
        if value is None or value == "" or (not_given is not None and value == not_given):
            return
        if not set_plain(span, name, value):
            span.set_attribute(name, value)

    return _swap_imported("_set_span_attribute", original, set_span_attribute)


# id(client) -> (a weak reference to it, the field its base URL property returns, that
# URL, the URL's text). A client is not kept alive by this (its connections stay the
# caller's to close).
_BASE_URLS: dict[int, tuple[weakref.ref[Any], str, Any, str]] = {}
_BASE_URLS_BOUND = 64


def _base_url_text(client: Any) -> str:
    """``str(client.base_url)``, made once per client and URL.

    The property costs more than the text (openai 3.x imports its implementation inside
    it, ~1 µs, and httpx builds the text from the URL's parts, ~1 µs). It returns a field
    of the client that its setter replaces (``_base_url`` in openai 3.60,
    ``_configured_base_url`` in 3.63): when exactly one field holds the very object the
    property gave, that field is read instead until it changes. A client whose property
    gives anything else is asked every time."""
    fields = getattr(client, "__dict__", None)
    known = _BASE_URLS.get(id(client))
    if (known is not None and known[0]() is client and fields is not None
            and fields.get(known[1]) is known[2]):
        return known[3]
    url = client.base_url
    text = str(url)
    holders = [name for name, value in fields.items() if value is url] if fields else []
    if len(holders) == 1:
        if len(_BASE_URLS) >= _BASE_URLS_BOUND:
            _BASE_URLS.clear()  # clients made by the hundred: start again, no growth
        _BASE_URLS[id(client)] = (weakref.ref(client), holders[0], url, text)
    return text


def cached_openai_base_urls() -> Callable[[], None]:
    """Make the client's base URL a string once per client and URL, not twice per call.

    The OpenAI instrumentation records it on every call, through ``_get_openai_base_url``
    and again in ``_set_client_attributes``, each time as ``str(client.base_url)`` (~2 µs
    each, more inside a real call: ~12 µs of a streamed call's tracing by py-spy). Both
    get a version that reads the text made once (``_base_url_text``);
    ``_set_client_attributes`` only for a plain ``OpenAI`` / ``AsyncOpenAI`` client
    (Azure's adds its API version: the original runs). Returns what puts the originals
    back."""
    openai = sys.modules.get("openai")
    shared: Any = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}shared")
    get_base_url = getattr(shared, "_get_openai_base_url", None)
    set_client = getattr(shared, "_set_client_attributes", None)
    api_base = getattr(getattr(shared, "SpanAttributes", None), "GEN_AI_OPENAI_API_BASE", None)
    found = tuple(getattr(openai, name, None) for name in ("OpenAI", "AsyncOpenAI"))
    clients: tuple[type, ...] = tuple(c for c in found if isinstance(c, type))
    if (not callable(get_base_url) or not callable(set_client) or not isinstance(api_base, str)
            or len(clients) != 2):
        return lambda: None

    def openai_base_url(instance: Any) -> Any:
        client: Any = getattr(instance, "_client", None)
        if isinstance(client, clients):  # as the original asks (Azure's clients included)
            return _base_url_text(client)
        return get_base_url(instance)

    def set_client_attributes(span: Any, instance: Any) -> None:
        client: Any = getattr(instance, "_client", None)
        if type(client) in clients:
            if span.is_recording():
                shared._set_span_attribute(span, api_base, _base_url_text(client))
            return
        set_client(span, instance)

    return undo_all([
        _swap_imported("_get_openai_base_url", get_base_url, openai_base_url),
        _swap_imported("_set_client_attributes", set_client, set_client_attributes)])


_TRUTHS_BOUND = 16
_OVERRIDE_KEY = "override_enable_content_tracing"


def quick_content_switch() -> Callable[[], None]:
    """Read the OpenAI instrumentation's content switch without ``os.getenv``.

    Its ``should_send_prompts`` runs twice a call (request and response): ``os.getenv``
    of ``TRACELOOP_TRACE_CONTENT`` (``os.environ`` encodes the key and decodes the value
    in Python each time), a context lookup, and its string test on both — ~3 µs each
    inside a real call. Each module that imported it by name gets one that reads the
    variable's raw bytes from ``os.environ``'s own dict (where ``os.environ[...] = ``
    writes, and ``os.getenv`` reads), tests each distinct value once, and looks at the
    context only when the variable says no, as the original's ``or`` decides. Only when
    that dict was checked here to track ``os.environ`` (POSIX: bytes keys). Returns what
    puts the original back."""
    from opentelemetry import context

    utils = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}utils")
    original = getattr(utils, "should_send_prompts", None)
    is_truthy = getattr(utils, "_is_truthy", None)
    name = getattr(utils, "TRACELOOP_TRACE_CONTENT", None)
    raw_env = getattr(os.environ, "_data", None)
    encodekey = getattr(os.environ, "encodekey", None)
    decodevalue = getattr(os.environ, "decodevalue", None)
    if (not callable(original) or not callable(is_truthy) or not isinstance(name, str)
            or type(raw_env) is not dict or not callable(encodekey)
            or not callable(decodevalue)):
        return lambda: None
    key = encodekey(name)
    probe = f"{name}_LLMTRACE_NB_PROBE"
    try:
        os.environ[probe] = "probe"
        tracked = decodevalue(raw_env.get(encodekey(probe))) == "probe"
    finally:
        os.environ.pop(probe, None)
    if not tracked or encodekey(probe) in raw_env:
        return lambda: None
    truths: dict[Any, bool] = {}
    get_value = context.get_value

    def should_send_prompts() -> bool:
        raw = raw_env.get(key)
        truth = truths.get(raw)
        if truth is None:
            truth = bool(is_truthy("true" if raw is None else decodevalue(raw)))
            if len(truths) >= _TRUTHS_BOUND:
                truths.clear()
            truths[raw] = truth
        return truth or bool(is_truthy(get_value(_OVERRIDE_KEY)))

    return _swap_imported("should_send_prompts", original, should_send_prompts)


def instrument_openai_quietly(instrument: Callable[[], None]) -> None:
    """Run ``instrument`` with the instrumentation's metrics off when nobody reads them."""
    if openai_metrics_read():
        instrument()
        return
    os.environ[_METRICS_ENV] = "false"
    try:
        instrument()
    finally:
        os.environ.pop(_METRICS_ENV, None)


def openai_instrumentor() -> Any:
    """opentelemetry-instrumentation-openai's ``OpenAIInstrumentor``, without resetting
    how someone else configured it.

    The instrumentor is a singleton (``BaseInstrumentor.__new__``), but its ``__init__``
    runs at every ``OpenAIInstrumentor()`` and writes each of its arguments into the
    package's global ``Config``: built with no arguments after ``Traceloop.init`` (or
    anyone) configured it, it would put back the defaults, e.g. their image uploader or
    trace-context setting. The existing instance is used as it is.
    """
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    existing = vars(OpenAIInstrumentor).get("_instance")
    return existing if isinstance(existing, OpenAIInstrumentor) else OpenAIInstrumentor()


def _openai_config() -> Any:
    module = sys.modules.get(f"{_OPENAI_INSTRUMENTATION}shared.config")
    config = getattr(module, "Config", None)
    return config if hasattr(config, "enable_trace_context_propagation") else None


def openai_sends_trace_context() -> bool | None:
    """Whether the OpenAI instrumentation adds a ``traceparent`` header to each request
    (None: the instrumentation is not loaded)."""
    config = _openai_config()
    return None if config is None else bool(config.enable_trace_context_propagation)


def send_openai_trace_context(on: bool) -> Callable[[], None]:
    """Make the OpenAI instrumentation add (or not) each call's W3C trace context to its
    request, as ``extra_headers``; returns what puts the previous setting back.

    The instrumentation does it by default. It costs ~20 µs a call (the span put in a
    context and formatted by a new propagator, then the header carried through openai's
    and httpx's header handling), about a tenth of what tracing a call costs; only a
    traced proxy or model server reads it (session.py's ``traceparent`` says when it is
    sent).
    """
    config = _openai_config()
    if config is None:
        return lambda: None
    before = config.enable_trace_context_propagation
    config.enable_trace_context_propagation = bool(on)

    def undo() -> None:
        if config.enable_trace_context_propagation is bool(on):
            config.enable_trace_context_propagation = before

    return undo
