"""Forwarding: spans leave the notebook over OTLP, on purpose, without ever hurting it.

    provider ─► Forwarder (SpanProcessor; one per session, swaps its pipeline)
                  └─► BatchSpanProcessor ─► PolicyExporter ─► CountingExporter ─► OTLP exporter

The cell's thread only enqueues (the BatchSpanProcessor's ``on_end``). Everything else —
the policy (secrets, redaction, ``--only``), encoding, the network — runs in the batch
processor's own thread. After a traced cell, a flush is *started* in a daemon thread so
its spans go out promptly; nothing waits for it, and at most one such thread runs. Every
export has a total deadline (``EXPORT_TIMEOUT_S``), also against a peer that answers a
byte at a time, and only a 2xx answer counts as sent. Failures are counted (sent / failed
/ dropped / queued in ``%llmtrace status``), the exporters' own log lines are kept out of
the notebook, and the cell shows at most one warning when its spans could not be sent.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..pricing import PriceBook
from .policy import REDACT_MODES, Only, PolicyExporter

PROTOCOLS = ("http/protobuf", "grpc")
#: the total time one export (one batch, retries included) may take before it counts as
#: failed: OTLP's default export timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s)
EXPORT_TIMEOUT_S = 10.0
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


def make_exporter(config: ForwardConfig,
                  session: DeadlineSession | None = None) -> SpanExporter:
    """The SDK's OTLP exporter for ``config``; over HTTP it sends with ``session`` (a new
    :class:`DeadlineSession` if None)."""
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

    # gRPC's timeout above is a deadline for the whole call; requests' is per read, so the
    # HTTP exporter gets a session that makes it one (unless a credential provider named
    # in the environment brings its own session, which the exporter then loads).
    credentials = (os.environ.get("OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER")
                   or os.environ.get("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER"))
    return OTLPSpanExporter(
        endpoint=config.endpoint, headers=dict(config.headers), timeout=config.timeout_s,
        certificate_file=config.certificate_file, client_key_file=config.client_key_file,
        client_certificate_file=config.client_certificate_file,
        session=None if credentials else (session or DeadlineSession(config.timeout_s)),
    )


# -- the HTTP exporter's session --------------------------------------------------------
#
# The OTLP/HTTP exporter sends through a requests.Session and takes one as ``session=``.
# Two things it does not do are added here, and nothing else is changed:
#
# * requests' ``timeout`` bounds each read, not the request: a peer that sends one byte
#   every 0.5 s is never timed out. The exporter passes, as ``timeout``, what is left of
#   the export's deadline; here that bounds the whole request (connect, send, headers,
#   body): a timer shuts the request's socket down when it runs out, which ends a blocked
#   read at once. To find that socket, urllib3's connections are subclassed to register
#   themselves with the request sending on their thread.
# * the exporter counts every status below 400 as sent, redirects included (which it does
#   not follow). Here anything but a 2xx is a failure naming the status; a redirect is
#   not followed either (it usually means a wrong URL — http for https, a path — and
#   following it would send the headers, credentials included, somewhere else).

_sending = threading.local()  # .watch: the _Watch of the request sent on this thread


class _Watch:
    """The connections one request uses, and whether its deadline cut them."""

    def __init__(self) -> None:
        self.conns: list[HTTPConnection] = []
        self._lock = threading.Lock()
        self._cut = False
        self._done = False

    def expire(self) -> None:  # the timer's
        with self._lock:
            if self._done:
                return
            self._cut = True
        for conn in list(self.conns):
            sock = getattr(conn, "sock", None)
            if isinstance(sock, socket.socket):
                # socket.socket's own shutdown: on TLS too, it ends the read and leaves
                # the TLS object alone
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def finish(self) -> bool:
        """The request is over; True if the deadline cut it. A cut answer can even look
        whole (headers ended by the cut, a body read to the end of the stream): it is a
        failure all the same."""
        with self._lock:
            self._done = True
            return self._cut


class _TimedHTTPConnection(HTTPConnection):
    def _watch(self) -> None:
        watch = getattr(_sending, "watch", None)
        if watch is not None and self not in watch.conns:
            watch.conns.append(self)

    def connect(self) -> None:
        self._watch()
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:  # each request, even on a kept conn
        self._watch()
        super().request(*args, **kwargs)


class _TimedHTTPSConnection(_TimedHTTPConnection, HTTPSConnection):
    pass


class _TimedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TimedHTTPConnection


class _TimedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TimedHTTPSConnection


_TIMED_POOLS = {"http": _TimedHTTPPool, "https": _TimedHTTPSPool}


class _TimedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _TIMED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has pools of its own
            manager.pool_classes_by_scheme = _TIMED_POOLS
        return manager


class _NotOurRequests(logging.Filter):
    """Drops urllib3's log lines about our own requests (an answer the deadline cut can
    read as malformed headers): the counts and the warning tell those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(_sending, "watch", None) is None


_NOT_OUR_REQUESTS = _NotOurRequests()


class NotSent(requests.RequestException):
    """A non-2xx answer the exporter would count as sent (a redirect)."""


class DeadlineSession(requests.Session):
    """The OTLP/HTTP exporter's session: a total deadline per request, 2xx or failure."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__()
        self.deadline_s = deadline_s
        #: why the last request failed, in a few words (None if it did not, or unknown)
        self.problem: str | None = None
        adapter = _TimedAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.problem = None
        timeout = kwargs.get("timeout")
        if not isinstance(timeout, (int, float)) or kwargs.get("stream"):
            return super().send(request, **kwargs)  # not how the exporter calls it
        watch = _Watch()
        timer = threading.Timer(max(timeout, 0.0), watch.expire)
        timer.daemon = True
        _sending.watch = watch
        timer.start()
        try:
            response = super().send(request, **kwargs)  # reads the whole body (no stream)
        except Exception as exc:
            if watch.finish() or isinstance(exc, requests.Timeout):
                raise self._too_late() from exc
            raise
        finally:
            timer.cancel()
            _sending.watch = None
        if watch.finish():
            response.close()
            raise self._too_late()
        code = response.status_code
        if not 200 <= code < 300:
            location = response.headers.get("Location") if 300 <= code < 400 else None
            self.problem = f"HTTP {code} {response.reason or ''}".rstrip() + (
                f" to {location[:200]}; redirects are not followed" if location else "")
            if code < 400:  # the exporter takes 1xx/3xx for success; 4xx/5xx it handles
                response.close()
                raise NotSent(self.problem)
        return response

    def _too_late(self) -> requests.Timeout:
        """What the exporter takes for a timeout: it fails the export, the deadline gone."""
        self.problem = f"no complete answer within the {self.deadline_s:g} s export deadline"
        return requests.Timeout(self.problem)


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

    def __init__(self, inner: SpanExporter,
                 reason: Callable[[], str | None] = lambda: None) -> None:
        self.inner = inner
        self._reason = reason  # why the last export failed, if the transport knows
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.in_flight = 0
        self.last_error: str | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        n = len(spans)
        with self._lock:
            self.in_flight += n
        error = None
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the batch thread
            result = SpanExportResult.FAILURE
            error = f"{type(exc).__name__}: {exc}"
        if result is not SpanExportResult.SUCCESS:
            self.last_error = error or self._reason()  # None: the exporter's log line says
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
                 prices: PriceBook, content: Callable[[], bool] = lambda: True) -> None:
        self.config = config
        session = DeadlineSession(config.timeout_s)  # (unused over gRPC)
        self.counter = CountingExporter(make_exporter(config, session),
                                        reason=lambda: session.problem)
        self.policy = PolicyExporter(self.counter, redact=config.redact, only=config.only,
                                     cell_roots=cell_roots, prices=prices, content=content)
        self.batch = BatchSpanProcessor(self.policy, max_queue_size=MAX_QUEUE,
                                        schedule_delay_millis=1000,
                                        export_timeout_millis=int(config.timeout_s * 1000))
        self.dropped = 0
        self._flush_lock = threading.Lock()
        self._flushing = False  # a flush thread runs
        self._flush_again = False  # and was asked for more while it ran
        self._stopped = False

    def flush_soon(self) -> None:
        """Send what is queued now, from a daemon thread; nothing waits for it. At most
        one such thread runs: asked again while it runs, it goes round once more instead
        (a held export would otherwise gather one waiting thread per cell)."""
        with self._flush_lock:
            if self._stopped:
                return
            if self._flushing:
                self._flush_again = True
                return
            self._flushing = True
        try:
            threading.Thread(target=self._flush, name="llmtrace-forward-flush",
                             daemon=True).start()
        except RuntimeError:  # no thread to be had: the batch thread sends within 1 s
            with self._flush_lock:
                self._flushing = False

    def _flush(self) -> None:
        while True:
            # each export in it ends within the deadline; errors are counted, not raised
            with contextlib.suppress(Exception):
                self.batch.force_flush()
            with self._flush_lock:
                if not self._flush_again or self._stopped:
                    self._flushing = False
                    return
                self._flush_again = False

    def queued(self) -> int:
        # The batch processor does not say how many spans wait; its queue is a deque.
        queue = getattr(getattr(self.batch, "_batch_processor", None), "_queue", None)
        return len(queue) if queue is not None else 0

    def stop(self, wait_s: float) -> None:
        """Shut down, waiting at most ``wait_s`` (a dead endpoint must not hold us)."""
        with self._flush_lock:
            self._stopped = True
        thread = threading.Thread(target=self.batch.shutdown, name="llmtrace-forward-stop",
                                  daemon=True)
        thread.start()
        thread.join(wait_s)


class Forwarder(SpanProcessor):
    """Added to the provider once per session; forwarding on/off swaps its pipeline."""

    def __init__(self, cell_roots: Callable[[], Mapping[int, int]], prices: PriceBook,
                 content: Callable[[], bool] = lambda: True) -> None:
        self._cell_roots = cell_roots
        self._prices = prices
        #: whether content is captured now; when not, no text leaves (whoever recorded it)
        self._content = content
        self._pipeline: _Pipeline | None = None
        self._catcher = _ErrorCatcher()
        self._warned_failures = 0
        atexit.register(self.stop)

    @property
    def config(self) -> ForwardConfig | None:
        pipeline = self._pipeline
        return pipeline.config if pipeline else None

    def start(self, config: ForwardConfig) -> None:
        pipeline = _Pipeline(config, self._cell_roots, self._prices, self._content)
        for name in _QUIET_LOGGERS:
            logger = logging.getLogger(name)
            if self._catcher not in logger.filters:
                logger.addFilter(self._catcher)
        for name in ("urllib3.connection", "urllib3.connectionpool"):
            logging.getLogger(name).addFilter(_NOT_OUR_REQUESTS)  # (once: filters are a set)
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
        """Send what the cell made now, from a daemon thread: the cell does not wait, and
        a flush still running is not joined by another."""
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.flush_soon()

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
