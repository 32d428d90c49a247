"""Forwarding: spans leave the notebook over OTLP, on purpose, without ever hurting it.

    provider ─► Forwarder (SpanProcessor; one per session, swaps its pipeline)
                  └─► BatchSpanProcessor ─► PolicyExporter ─► CountingExporter ─► OTLP exporter

The cell's thread only enqueues (the BatchSpanProcessor's ``on_end``). Everything else —
the policy (secrets, redaction, ``--only``), encoding, the network — runs in the batch
processor's own thread. After a traced cell, a flush is *started* in a daemon thread so
its spans go out promptly; nothing waits for it. Failures are counted (sent / failed /
dropped / queued in ``%llmtrace status``), the exporters' own log lines are kept out of
the notebook, and the cell shows at most one warning when its spans could not be sent.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ..pricing import PriceBook
from .policy import REDACT_MODES, Only, PolicyExporter

PROTOCOLS = ("http/protobuf", "grpc")
EXPORT_TIMEOUT_S = 5.0
#: how long kernel exit may wait for the last spans to go out
SHUTDOWN_WAIT_S = 3.0
MAX_QUEUE = 100_000
#: loggers of the exporters and the batch processor: their errors become our counters
_QUIET_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace.export",
)


class ForwardConfigError(ValueError):
    """Forwarding was asked for with a bad URL, protocol, header or policy."""


@dataclass(frozen=True)
class ForwardConfig:
    endpoint: str
    protocol: str = "http/protobuf"
    headers: Mapping[str, str] = field(default_factory=dict)
    redact: str = "none"
    only: Only | None = None
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None
    insecure: bool | None = None
    timeout_s: float = EXPORT_TIMEOUT_S

    def describe(self) -> str:
        extra = [self.protocol] if self.protocol != "http/protobuf" else []
        if self.only:
            extra.append(f"only {self.only}")
        if self.redact != "none":
            extra.append(f"redact {self.redact}")
        return self.endpoint + (f" ({', '.join(extra)})" if extra else "")


def traces_endpoint(url: str, protocol: str, *, signal_specific: bool = False) -> str:
    """Validate ``url``; for OTLP/HTTP, a base address gets ``/v1/traces`` appended.

    ``signal_specific`` is for OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, which is used as given.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ForwardConfigError(
            f"forward: {url!r} is not an http(s) URL with a host (e.g. http://localhost:4318)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ForwardConfigError(f"forward: bad port in {url!r}: {exc}") from None
    if protocol == "grpc" or signal_specific:
        return url.strip()
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/traces"):
        path += "/v1/traces"
    return parts._replace(path=path).geturl()


def parse_headers(items: Sequence[str] | str | None) -> dict[str, str]:
    """``K=V`` items, or OTEL_EXPORTER_OTLP_HEADERS' ``k1=v1,k2=v2`` (URL-encoded)."""
    from urllib.parse import unquote

    if items is None:
        return {}
    if isinstance(items, str):
        items = [i for i in items.split(",") if i.strip()]
    headers = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ForwardConfigError(f"forward: header {item!r} is not KEY=VALUE")
        headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def config_from_env(env: Mapping[str, str] = os.environ) -> ForwardConfig | None:
    """Forwarding configured by the standard OTEL_EXPORTER_OTLP_* variables, if any."""
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    if protocol not in PROTOCOLS:
        raise ForwardConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: llmtrace_nb "
                                 f"forwards with {' or '.join(PROTOCOLS)}")
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        endpoint = traces_endpoint(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"], protocol,
                                   signal_specific=True)
    elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = traces_endpoint(env["OTEL_EXPORTER_OTLP_ENDPOINT"], protocol)
    else:
        return None
    headers = parse_headers(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                            or env.get("OTEL_EXPORTER_OTLP_HEADERS"))
    return ForwardConfig(endpoint=endpoint, protocol=protocol, headers=headers)


def make_config(url: str, *, protocol: str = "http/protobuf",
                headers: Sequence[str] | Mapping[str, str] | None = None,
                only: str | Only | None = None, redact: str = "none",
                **tls: Any) -> ForwardConfig:
    """A validated configuration; raises :class:`ForwardConfigError` with the reason."""
    if protocol not in PROTOCOLS:
        raise ForwardConfigError(f"forward: --protocol must be {' or '.join(PROTOCOLS)}, "
                                 f"got {protocol!r}")
    if redact not in REDACT_MODES:
        raise ForwardConfigError(f"forward: --redact must be one of {', '.join(REDACT_MODES)}"
                                 f", got {redact!r}")
    try:
        only_rules = Only.parse(only) if isinstance(only, str) else only
    except ValueError as exc:
        raise ForwardConfigError(f"forward: {exc}") from None
    header_map = dict(headers) if isinstance(headers, Mapping) else parse_headers(headers)
    return ForwardConfig(endpoint=traces_endpoint(url, protocol), protocol=protocol,
                         headers=header_map, redact=redact, only=only_rules, **tls)


def make_exporter(config: ForwardConfig) -> SpanExporter:
    if config.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise ForwardConfigError(
                "forward: gRPC needs the grpc extra: pip install 'llmtrace_nb[grpc]'") from None
        return GrpcExporter(endpoint=config.endpoint, headers=dict(config.headers),
                            timeout=config.timeout_s, insecure=config.insecure)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=config.endpoint, headers=dict(config.headers), timeout=config.timeout_s,
        certificate_file=config.certificate_file, client_key_file=config.client_key_file,
        client_certificate_file=config.client_certificate_file,
    )


class _ErrorCatcher(logging.Filter):
    """Keeps the exporters' error lines out of the notebook, remembering the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            self.last = record.getMessage().splitlines()[0][:300]
        return False


class CountingExporter(SpanExporter):
    """Counts what went out and what failed; never raises into the batch processor."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.in_flight = 0
        self.last_error: str | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        n = len(spans)
        with self._lock:
            self.in_flight += n
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the batch thread
            result = SpanExportResult.FAILURE
            self.last_error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.in_flight -= n
            if result is SpanExportResult.SUCCESS:
                self.sent += n
            else:
                self.failed += n
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


class _Pipeline:
    """One configured destination: batch processor, counters, policy, exporter."""

    def __init__(self, config: ForwardConfig, cell_roots: Callable[[], Mapping[int, int]],
                 prices: PriceBook) -> None:
        self.config = config
        self.counter = CountingExporter(make_exporter(config))
        self.policy = PolicyExporter(self.counter, redact=config.redact, only=config.only,
                                     cell_roots=cell_roots, prices=prices)
        self.batch = BatchSpanProcessor(self.policy, max_queue_size=MAX_QUEUE,
                                        schedule_delay_millis=1000,
                                        export_timeout_millis=int(config.timeout_s * 1000))
        self.dropped = 0

    def queued(self) -> int:
        # The batch processor does not say how many spans wait; its queue is a deque.
        queue = getattr(getattr(self.batch, "_batch_processor", None), "_queue", None)
        return len(queue) if queue is not None else 0

    def stop(self, wait_s: float) -> None:
        """Shut down, waiting at most ``wait_s`` (a dead endpoint must not hold us)."""
        thread = threading.Thread(target=self.batch.shutdown, name="llmtrace-forward-stop",
                                  daemon=True)
        thread.start()
        thread.join(wait_s)


class Forwarder(SpanProcessor):
    """Added to the provider once per session; forwarding on/off swaps its pipeline."""

    def __init__(self, cell_roots: Callable[[], Mapping[int, int]], prices: PriceBook) -> None:
        self._cell_roots = cell_roots
        self._prices = prices
        self._pipeline: _Pipeline | None = None
        self._catcher = _ErrorCatcher()
        self._warned_failures = 0
        atexit.register(self.stop)

    @property
    def config(self) -> ForwardConfig | None:
        pipeline = self._pipeline
        return pipeline.config if pipeline else None

    def start(self, config: ForwardConfig) -> None:
        pipeline = _Pipeline(config, self._cell_roots, self._prices)
        for name in _QUIET_LOGGERS:
            logger = logging.getLogger(name)
            if self._catcher not in logger.filters:
                logger.addFilter(self._catcher)
        old, self._pipeline = self._pipeline, pipeline
        self._warned_failures = 0
        if old is not None:
            threading.Thread(target=old.stop, args=(SHUTDOWN_WAIT_S,), daemon=True).start()

    def stop(self, wait: bool = True) -> None:
        """Stop forwarding; the spans already queued still go out (waiting at most
        SHUTDOWN_WAIT_S, or not at all with ``wait=False``)."""
        old, self._pipeline = self._pipeline, None
        if old is None:
            return
        if wait:
            old.stop(SHUTDOWN_WAIT_S)
        else:
            threading.Thread(target=old.stop, args=(SHUTDOWN_WAIT_S,), daemon=True).start()

    # -- SpanProcessor: the hot path is one attribute read and the batch enqueue ---------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pipeline = self._pipeline
        if pipeline is not None:
            if pipeline.queued() >= MAX_QUEUE:  # the queue will evict its oldest span
                pipeline.dropped += 1
            pipeline.batch.on_end(span)

    def shutdown(self) -> None:
        self.stop()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # callers on the cell's thread must never wait on the network

    # -- after a cell --------------------------------------------------------------------

    def nudge(self) -> None:
        """Send what the cell made now, from a daemon thread: the cell does not wait."""
        pipeline = self._pipeline
        if pipeline is not None:
            threading.Thread(target=pipeline.batch.force_flush,
                             kwargs={"timeout_millis": int(pipeline.config.timeout_s * 1000)},
                             name="llmtrace-forward-flush", daemon=True).start()

    def new_failure_warning(self) -> str | None:
        """One line if spans failed to go out since the last warning, else None."""
        pipeline = self._pipeline
        if pipeline is None or pipeline.counter.failed <= self._warned_failures:
            return None
        failed = pipeline.counter.failed - self._warned_failures
        self._warned_failures = pipeline.counter.failed
        reason = pipeline.counter.last_error or self._catcher.last or "no answer"
        spans = "span" if failed == 1 else "spans"
        return (f"llmtrace_nb: {failed:,} {spans} could not be forwarded to "
                f"{pipeline.config.endpoint} ({reason}); they are still in the notebook")

    def counts(self) -> dict[str, int] | None:
        pipeline = self._pipeline
        if pipeline is None:
            return None
        c = pipeline.counter
        return {"sent": c.sent, "failed": c.failed,
                "queued": pipeline.queued() + c.in_flight + pipeline.policy.waiting(),
                "filtered": pipeline.policy.filtered, "dropped": pipeline.dropped}
