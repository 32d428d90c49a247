"""Session wiring: the tracer provider, the collector, instrumentations and options.

State lives in this module (not in ``__init__``) so that ``%reload_ext llmtrace_nb``,
which re-executes only the package's ``__init__``, keeps the collected spans and never
adds a second collector to the provider.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from .. import _current
from .._capture.collector import DEFAULT_MAX_SPANS, SpanCollector
from .._capture.compat import (
    cache_openai_version_checks,
    cached_openai_base_urls,
    inline_openai_requests,
    instrument_openai_quietly,
    library_providers,
    openai_instrumentor,
    otel_content_value,
    quick_content_switch,
    quick_openai_attributes,
    sdk_provider,
    send_openai_trace_context,
    skip_unread_chat_metrics,
    skip_unread_stream_metrics,
    tracing_libraries,
    undo_all,
    unsuppress_openai,
    unwrap_openai,
)
from .._capture.openai_streams import patch as patch_streams
from .._keep.keeper import Keeper, configured_path
from .._shape.frames import FrameBuilder
from .._shape.pricing import PriceBook
from .._ship.forward import ForwardConfig, Forwarder, config_from_env, make_config
from .._version import __version__

DEFAULT_SERVICE_NAME = "llmtrace-notebook"

CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
TRACELOOP_CONTENT_ENV = "TRACELOOP_TRACE_CONTENT"
#: the Anthropic SDK's own spans hold no messages unless this says "content"
ANTHROPIC_CONTENT_ENV = "ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE"
_FALSE = ("false", "0", "no", "off", "no_content")


def _content_from_env() -> bool:
    """Content is captured unless one of the standard switches turns it off."""
    for name in (CONTENT_ENV, TRACELOOP_CONTENT_ENV):
        value = os.environ.get(name)
        if value is not None and value.strip().lower() in _FALSE:
            return False
    return True


@dataclass
class Instrumentation:
    """An instrumentation we turned on (and so must turn off on unload)."""

    name: str
    uninstrument: Callable[[], None]
    #: named in the status (a fix to someone else's instrumentation is not)
    listed: bool = True


# Instrumentors of OpenAI other than ours: if one of them is active, adding ours would
# make every call two spans.
_OTHER_OPENAI_INSTRUMENTORS = (
    ("openinference.instrumentation.openai", "OpenAIInstrumentor"),
    ("opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor"),
)


@dataclass
class Session:
    provider: TracerProvider
    owns_provider: bool
    collector: SpanCollector
    prices: PriceBook
    frames: FrameBuilder
    forwarder: Forwarder | None = None
    capture_content: bool = True
    #: whether the OpenAI calls we instrument carry their trace context (a ``traceparent``
    #: header) to the server: off unless asked (%llmtrace traceparent; README says why)
    traceparent: bool = False
    auto: bool = False
    #: what a cell's view saves in the notebook (document.OUTPUTS; %llmtrace output)
    output: str = "compact"
    active: bool = False
    instrumented: list[Instrumentation] = field(default_factory=list)
    #: instrumentations found active that someone else turned on
    found: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: (label, provider) of every SDK provider our processors are on
    collected: list[tuple[str, TracerProvider]] = field(default_factory=list)
    #: the local store this session writes to (None: off, or it could not be opened)
    keeper: Keeper | None = None
    #: where the store was asked to be (None: off); why it is not open, if it is not
    store_path: Path | None = None
    store_problem: str | None = None

    @property
    def tracer(self) -> trace.Tracer:
        return self.provider.get_tracer("llmtrace_nb", __version__)

    def spans(self) -> pd.DataFrame:
        """``spans_df()``: every collected span; no message text when content is off."""
        return self.frames.spans(capture_content=self.capture_content)

    def instrumentation_names(self) -> list[str]:
        """Ours, then any other instrumentation (or self-tracing library) found active."""
        names = [i.name for i in self.instrumented if i.listed] + self.found
        names += [n for n in active_instrumentations() if n not in names]
        return names + [n for n in tracing_libraries() if n not in names]

    def describe_providers(self) -> str:
        """The providers whose spans are collected: ours or the user's, and libraries'."""
        return ", ".join(label for label, _ in self.collected)

    def describe_instrumentations(self) -> str:
        ours = [i.name for i in self.instrumented if i.listed]
        others = [n for n in self.instrumentation_names() if n not in ours]
        text = ", ".join(ours) or "nothing"
        return text + (f" (already on: {', '.join(others)})" if others else "")

    def set_capture_content(self, on: bool) -> None:
        """Switch content capture for the instrumentations and our own outputs."""
        self.capture_content = on
        # The OpenAI instrumentation reads TRACELOOP_TRACE_CONTENT on every call; the
        # contrib instrumentations read the OTel switch.
        os.environ[TRACELOOP_CONTENT_ENV] = "true" if on else "false"
        os.environ[CONTENT_ENV] = otel_content_value(on)
        _anthropic_content(on, force=True)

    def set_traceparent(self, on: bool) -> None:
        """Send (or not) each OpenAI request's trace context; asked for explicitly, this
        applies to the OpenAI instrumentation whoever turned it on."""
        self.traceparent = on
        send_openai_trace_context(on)


_lock = threading.RLock()


def _renew_lock() -> None:
    global _lock
    _lock = threading.RLock()  # held by another thread at a fork: locked for ever


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_lock)


def current() -> Session | None:
    """The session, kept in ``_current`` (one record: the layers below read it there)."""
    running = _current.current()
    return running if isinstance(running, Session) else None


def _capturing_content() -> bool:
    session = current()
    return session is None or session.capture_content


def require() -> Session:
    session = current()
    if session is None or not session.active:
        raise RuntimeError(
            "llmtrace_nb is not enabled: run `%load_ext llmtrace_nb` or "
            "`llmtrace_nb.enable()` first"
        )
    return session


def _make_resource() -> Resource:
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; attributes
    # passed to it would win over them, so the default is passed only when neither sets
    # a service name.
    env_attrs = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in env_attrs:
        return Resource.create()
    return Resource.create({SERVICE_NAME: DEFAULT_SERVICE_NAME})


def _label(cls: type) -> str:
    """``opentelemetry.instrumentation.requests`` → ``requests``; OpenInference prefixed."""
    module = cls.__module__
    for prefix, tag in (("opentelemetry.instrumentation.", ""),
                        ("openinference.instrumentation.", "openinference-")):
        if module.startswith(prefix):
            return tag + module[len(prefix):].split(".")[0]
    return f"{module}.{cls.__name__}"


def active_instrumentations() -> list[str]:
    """Every OpenTelemetry instrumentor that is on in this process, whoever turned it on.

    Instrumentors are singletons subclassing ``BaseInstrumentor``; one that is on has been
    imported, so walking the subclasses already loaded finds them all without importing
    anything.
    """
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )

    found: list[str] = []
    pending = list(BaseInstrumentor.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        instance = cls.__dict__.get("_instance")
        if instance is not None and getattr(instance, "_is_instrumented_by_opentelemetry", False):
            label = _label(cls)
            if label not in found:
                found.append(label)
    return sorted(found)


def _anthropic_content(on: bool, *, force: bool) -> None:
    # Read when an Anthropic client is made. Turned on only where the user said nothing
    # (loading the extension); `%llmtrace content` says it for them.
    if on and (force or ANTHROPIC_CONTENT_ENV not in os.environ):
        os.environ[ANTHROPIC_CONTENT_ENV] = "content"
    elif not on:
        os.environ[ANTHROPIC_CONTENT_ENV] = "metadata_only"


def _provider() -> tuple[TracerProvider, str, str | None]:
    """The SDK provider spans are made with: the global one if it is an SDK provider
    (the user's, a library's) or wraps one (logfire's proxy), else one of ours, set as
    the global. Returns it, its label ("ours" when we made it) and a note."""
    current_provider = trace.get_tracer_provider()
    found = sdk_provider(current_provider)
    if found is not None:
        wrapper = type(current_provider).__module__.split(".")[0]
        return found, "global" if found is current_provider else f"{wrapper}'s", None
    provider = TracerProvider(resource=_make_resource())
    if isinstance(current_provider, trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
        return provider, "ours", None
    # A non-SDK provider is set globally; we cannot add processors to it.
    return provider, "ours", (
        f"the global tracer provider is a {type(current_provider).__name__}, not an SDK "
        "TracerProvider: llmtrace_nb uses a private provider for the instrumentations it "
        "turns on"
    )


def _openai_wrapped() -> bool:
    """True when OpenAI's chat create is already wrapped by some instrumentation.

    Every instrumentation of the OpenAI client patches it with wrapt, whose function
    wrappers carry ``_self_wrapper``; ``__wrapped__`` would not do, the client's own
    ``functools.wraps`` decorators set it too.
    """
    try:
        from openai.resources.chat.completions import Completions
    except ImportError:
        return False
    return hasattr(vars(Completions).get("create"), "_self_wrapper")


def _other_openai_instrumentor() -> str | None:
    for module_name, class_name in _OTHER_OPENAI_INSTRUMENTORS:
        if importlib.util.find_spec(module_name.split(".")[0]) is None:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception:
            continue
        instrumentor = getattr(module, class_name, None)
        if instrumentor is not None and instrumentor().is_instrumented_by_opentelemetry:
            return _label(instrumentor)
    return None


def _fix_openai_instrumentation() -> Callable[[], None]:
    """Apply compat.py's fixes to the instrumented OpenAI client (streams, frameworks'
    suppression, the per-call event loop, version checks, unread metrics, attributes set
    without the SDK's locks, the base URL's text, the content switch read); returns what
    undoes them, last applied first undone."""
    return undo_all([patch_streams(), unsuppress_openai(), inline_openai_requests(),
                     cache_openai_version_checks(), skip_unread_chat_metrics(),
                     skip_unread_stream_metrics(), quick_openai_attributes(),
                     cached_openai_base_urls(), quick_content_switch()])


def _instrument(session: Session) -> None:
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    provider_kw: dict[str, Any] = {"tracer_provider": session.provider}
    other = _other_openai_instrumentor()
    openai_inst = openai_instrumentor()
    if other is not None:
        session.found.append(other)
    elif openai_inst.is_instrumented_by_opentelemetry or _openai_wrapped():
        session.found.append("openai")
        if openai_inst.is_instrumented_by_opentelemetry:  # Traceloop.init turned it on
            session.instrumented.append(Instrumentation(
                "openai fixes", _fix_openai_instrumentation(), listed=False))
    elif importlib.util.find_spec("openai") is not None:
        instrument_openai_quietly(lambda: openai_inst.instrument(**provider_kw))
        unpatch = _fix_openai_instrumentation()
        # The instrumentation sends it by default; we do not unless asked (README,
        # "Forwarding"; docs/ARCHITECTURE.md, "Decisions"): only a traced proxy reads it,
        # and it costs ~20 µs a call.
        undo_traceparent = send_openai_trace_context(session.traceparent)

        def uninstrument_openai() -> None:
            undo_traceparent()
            unpatch()
            openai_inst.uninstrument()
            unwrap_openai()

        session.instrumented.append(Instrumentation("openai", uninstrument_openai))

    threading_inst = ThreadingInstrumentor()
    if threading_inst.is_instrumented_by_opentelemetry:
        session.found.append("threading")
    else:
        threading_inst.instrument(**provider_kw)
        session.instrumented.append(Instrumentation("threading", threading_inst.uninstrument))


def attach_providers(session: Session) -> list[str]:
    """Put the collector (and forwarder) on every SDK provider spans are made with now:
    the global one — a library may have set or swapped it since — and those libraries
    keep for themselves (logfire's). Cheap; run at load and before every cell. Returns
    the labels of the providers newly attached."""
    candidates = [("global", sdk_provider(trace.get_tracer_provider())),
                  *library_providers()]
    added = []
    for label, provider in candidates:
        if provider is None or any(p is provider for _, p in session.collected):
            continue
        provider.add_span_processor(session.collector)
        if session.forwarder is not None:
            provider.add_span_processor(session.forwarder)
        session.collected.append((label, provider))
        added.append(label)
    return added


def _forward_config(forward: str | Mapping[str, Any] | ForwardConfig) -> ForwardConfig:
    if isinstance(forward, ForwardConfig):
        return forward
    if isinstance(forward, str):
        return make_config(forward)
    if isinstance(forward, Mapping):
        options = dict(forward)
        url = options.pop("url", None) or options.pop("endpoint", None)
        if not isinstance(url, str):
            raise ValueError("forward={...} needs a 'url'")
        return make_config(url, **options)
    raise TypeError(f"forward must be a URL, a dict of options or False, got {forward!r}")


def _recall(collector: SpanCollector) -> Callable[[int], list[ReadableSpan]]:
    """What forwarding sends of a trace it held back, when a judgement asks for it: the
    spans still in the buffer, and — if the buffer lost any (evicted, or cleared) — the
    rest from this session's store."""
    def recall(trace_id: int) -> list[ReadableSpan]:
        spans = collector.trace_spans(trace_id)
        sess = current()
        keeper = sess.keeper if sess is not None and sess.collector is collector else None
        if keeper is None or not (collector.dropped or collector.generation):
            return spans
        have = {s.context.span_id for s in spans}
        return spans + [s for s in keeper.trace_spans(trace_id) if s.context.span_id not in have]

    return recall


def enable(max_spans: int | None = None, capture_content: bool | None = None,
           auto: bool | None = None,
           forward: str | Mapping[str, Any] | ForwardConfig | bool | None = None,
           store: str | os.PathLike[str] | bool | None = None,
           traceparent: bool | None = None) -> Session:
    """Start collecting (idempotent). Returns the session.

    ``forward``: a collector URL, or a dict of ``url`` and the ``%llmtrace forward``
    options (``protocol``, ``headers``, ``only``, ``redact``, TLS files), or False to
    stop forwarding. Without it, the OTEL_EXPORTER_OTLP_* variables decide.
    ``store``: the local store's file, or False / ``"off"``; without it,
    ``LLMTRACE_NB_STORE``, else the default location, decides (at the first enable).
    ``traceparent``: send each OpenAI request's trace context to the server (off unless
    asked; ``%llmtrace traceparent``).
    """
    # Validate before changing anything: a bad URL is an error now, not at first export.
    config = (_forward_config(forward)
              if forward is not None and not isinstance(forward, bool) else None)
    store_path = configured_path(store)
    env_config = config_from_env() if forward is None and current() is None else None
    if max_spans is not None and (isinstance(max_spans, bool) or not isinstance(max_spans, int)
                                  or max_spans < 1):
        raise ValueError(f"max_spans must be a positive integer, got {max_spans!r}")
    if traceparent is not None and not isinstance(traceparent, bool):
        raise TypeError(f"traceparent must be True or False, got {traceparent!r}")
    with _lock:
        session = current()
        if session is None:
            provider, label, note = _provider()
            owns = label == "ours"
            collector = SpanCollector(max_spans or DEFAULT_MAX_SPANS)
            provider.add_span_processor(collector)
            prices = PriceBook()
            forwarder = Forwarder(
                lambda: {c.trace_id: c.root_span_id for c in collector.cells()
                         if c.trace_id is not None and c.root_span_id is not None},
                prices, content=_capturing_content,
                active_cell=lambda: collector.active_cell, cells=collector.cells,
                recall=_recall(collector))
            provider.add_span_processor(forwarder)
            session = Session(
                provider=provider, owns_provider=owns, collector=collector, prices=prices,
                frames=FrameBuilder(collector, prices), forwarder=forwarder,
                capture_content=_content_from_env(),
                collected=[(label, provider)], store_path=store_path,
            )
            if session.capture_content and "anthropic" in sys.modules and (
                    ANTHROPIC_CONTENT_ENV not in os.environ):
                session.notes.append(
                    "Anthropic clients made before loading record no messages (the SDK reads "
                    f"{ANTHROPIC_CONTENT_ENV} when a client is made): make them again")
            _anthropic_content(session.capture_content, force=False)
            if not session.capture_content:
                # off from the environment (either switch): every instrumentation must
                # hear it, not only the one whose variable was set
                session.set_capture_content(False)
            if note:
                session.notes.append(note)
            _current.register(session)
        elif max_spans is not None:
            session.collector.resize(max_spans)
        if traceparent is not None:
            session.traceparent = traceparent
        if not session.active:
            session.collector.enabled = True
            session.found.clear()
            _instrument(session)
            session.active = True
            if store is None and session.keeper is None and session.store_path is not None:
                use_store(session, session.store_path)  # first enable, or after disable
        if store is not None:
            use_store(session, store_path)
        attach_providers(session)
        if capture_content is not None:
            session.set_capture_content(capture_content)
        if traceparent is not None:
            session.set_traceparent(traceparent)
        if session.forwarder is not None:
            if config is not None or env_config is not None:
                session.forwarder.start(config or env_config)  # type: ignore[arg-type]
            elif forward is False:
                session.forwarder.stop()
        if auto is not None:
            session.auto = auto
        return session


def use_store(session: Session, path: Path | None) -> None:
    """Write to the store at ``path`` from now on (None: stop writing). A location that
    cannot be used is noted (``%llmtrace status``, the load line) and the session goes
    on in memory."""
    if session.keeper is not None and session.keeper.path == path:
        return
    if session.keeper is not None:
        session.keeper.close()
        session.keeper = None
    session.store_path, session.store_problem = path, None
    if path is None:
        return
    try:
        session.keeper = Keeper(path, session.collector, _capturing_content)
    except (OSError, ValueError) as exc:  # StoreError is an OSError
        session.store_problem = (f"the span store at {path} cannot be used ({exc}); spans "
                                 "are kept in memory only")


def disable() -> None:
    """Stop collecting and turn off the instrumentations we turned on. Spans are kept."""
    with _lock:
        session = current()
        if session is None or not session.active:
            return
        for inst in reversed(session.instrumented):
            inst.uninstrument()
        session.instrumented.clear()
        session.found.clear()
        # The SDK cannot remove a processor from a provider; the collector goes quiet.
        session.collector.enabled = False
        session.collector.active_cell = None
        if session.forwarder is not None:
            session.forwarder.stop()
        if session.keeper is not None:  # its last flush: every span collected is kept
            session.keeper.close()
            session.keeper = None
        session.auto = False
        session.active = False
