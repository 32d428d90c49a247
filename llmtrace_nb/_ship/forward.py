"""Forwarding: spans leave the notebook over OTLP, on purpose, without ever hurting it.

    provider ─► Forwarder (SpanProcessor; one per session, swaps its pipeline)
                  └─► BatchSpanProcessor ─► _CellTracker ─► PolicyExporter ─► CountingExporter
                                                                              ─► OTLP exporter

The cell's thread only enqueues (the BatchSpanProcessor's ``on_end``). Everything else —
the policy (secrets, redaction, ``--only``), encoding, the network — runs in the batch
processor's own thread. After a traced cell, a flush is *started* in a daemon thread so
its spans go out promptly; nothing waits for it, and at most one such thread runs. Every
export has a total deadline (``EXPORT_TIMEOUT_S``), also against a peer that answers a
byte at a time, and only a 2xx answer counts as sent. Failures are counted (sent / failed
/ dropped / queued in ``%llmtrace status``), the exporters' own log lines are kept out of
the notebook, and a traced cell shows at most one warning when spans could not be sent.

A warning names, for the spans it tells of, the cell each belongs to (the cell running
when the span started, as in the notebook; or "outside any cell"), the endpoint they were
sent to and that endpoint's error. A failure is told on the first traced cell that ends
after it was counted: under its own cell when the export failed while the cell ran,
otherwise under a later one. Failures of an endpoint forwarding has since moved away from
(its last spans still go out) are told the same way, with that endpoint.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .._capture.collector import CellRef
from .._capture.sdk import batch_queue
from .._fork import fresh_locks_after_fork
from .._read.scrub import scrub_text
from .._shape.pricing import PriceBook
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
#: .report: the _Report of the export running on this thread (set by CountingExporter);
#: .originals: the spans as the batch processor handed them over (set by _CellTracker)
_exporting = threading.local()

#: the exporters' log lines that say an export gave up, not why
_GAVE_UP = ("due to timeout, max retries or shutdown", "Shutdown in progress, aborting retry")


class _Report:
    """Why the export running on a thread failed, as learnt while it ran."""

    __slots__ = ("lines", "problem")

    def __init__(self) -> None:
        self.problem: str | None = None  # the transport's (DeadlineSession) own words
        self.lines: list[str] = []  # the exporter's warning and error log lines

    def reason(self) -> str | None:
        """The transport's words, else the last log line that says more than that the
        export gave up ("… due to timeout, max retries or shutdown")."""
        if self.problem:
            return self.problem
        for line in reversed(self.lines):
            if not any(words in line for words in _GAVE_UP):
                return line
        return self.lines[-1] if self.lines else None


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

    def _problem(self, problem: str | None) -> str | None:
        self.problem = problem
        report = getattr(_exporting, "report", None)
        if report is not None:  # told to the export on this thread, not to another's
            report.problem = problem
        return problem

    def send(self, request: Any, **kwargs: Any) -> Any:
        # the export's report keeps an earlier attempt's problem: a retry the deadline
        # cuts should not hide that the first one was refused
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
            self._problem(_describe(exc))
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
            problem = f"HTTP {code} {response.reason or ''}".rstrip() + (
                f" to {location[:200]}; redirects are not followed" if location else "")
            self._problem(problem)
            if code < 400:  # the exporter takes 1xx/3xx for success; 4xx/5xx it handles
                response.close()
                raise NotSent(problem)
        return response

    def _too_late(self) -> requests.Timeout:
        """What the exporter takes for a timeout: it fails the export, the deadline gone."""
        problem = f"no complete answer within the {self.deadline_s:g} s export deadline"
        report = getattr(_exporting, "report", None)
        earlier = report.problem if report is not None else None
        if earlier and "export deadline" not in earlier:  # an attempt before this one's
            problem = f"{earlier}; retried until the {self.deadline_s:g} s export deadline"
        return requests.Timeout(self._problem(problem))


# urllib3 names the connection first: "HTTPConnection(host='h', port=1): …" (2.x) or
# "<urllib3.connection.HTTPConnection object at 0x…>: …" (1.x)
_CONNECTION_PREFIX = re.compile(r"^(?:<[^<>]*>|\w+\([^()]*\)): ")


def _describe(exc: BaseException) -> str:
    """A failed request's exception in a few words: its innermost cause, which is where
    requests and urllib3 say what happened ("Failed to establish a new connection: [Errno
    111] Connection refused", "Failed to resolve 'host' (…)")."""
    context = ""
    for _ in range(8):
        inner = getattr(exc, "reason", None)  # urllib3's MaxRetryError
        if not isinstance(inner, BaseException):
            inner = next((a for a in exc.args if isinstance(a, BaseException)), None)
            if inner is not None and exc.args and isinstance(exc.args[0], str):
                # ProtocolError("Connection aborted.", BadStatusLine(…))
                context = exc.args[0].rstrip(".") + ": " + type(inner).__name__ + " "
        if inner is None:
            break
        exc = inner
    return context + _CONNECTION_PREFIX.sub("", str(exc) or type(exc).__name__)


def _printable(text: str, limit: int = 300) -> str:
    """One line of visible characters (an answer's bytes can be anything)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text.strip())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class _ErrorCatcher(logging.Filter):
    """Keeps the exporters' log lines out of the notebook; a warning or error logged while
    an export runs is kept as that export's (the thread's) reason, should it fail."""

    def filter(self, record: logging.LogRecord) -> bool:
        report = getattr(_exporting, "report", None)
        if report is not None and record.levelno >= logging.WARNING:
            with contextlib.suppress(Exception):
                line = record.getMessage().splitlines()[0]
                if len(report.lines) >= 20:  # (the last counts; a few retries at most)
                    del report.lines[:10]
                report.lines.append(line)
        return False


#: what a failed export is told to: the spans that failed, why, and what counts them as
#: failed (to be called once, together with noting them: counted and told agree)
FailureSink = Callable[[Sequence[ReadableSpan], str, Callable[[], None]], None]


class CountingExporter(SpanExporter):
    """Counts what went out and what failed, telling ``on_failure`` which spans failed and
    why; never raises into the batch processor."""

    def __init__(self, inner: SpanExporter, on_failure: FailureSink | None = None) -> None:
        self.inner = inner
        self._on_failure = on_failure
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
        # What this export learns about its failure is its own: another pipeline's export
        # (an endpoint being left, still sending its last spans) runs on another thread.
        report, outer = _Report(), getattr(_exporting, "report", None)
        _exporting.report = report
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the batch thread
            result = SpanExportResult.FAILURE
            error = f"{type(exc).__name__}: {exc}"
        finally:
            _exporting.report = outer
        settled = False

        def settle() -> None:
            nonlocal settled
            if settled:
                return
            settled = True
            with self._lock:
                self.in_flight -= n
                if result is SpanExportResult.SUCCESS:
                    self.sent += n
                else:
                    self.failed += n

        if result is not SpanExportResult.SUCCESS:
            reason = error or report.reason() or "the exporter gave no reason"
            self.last_error = reason = _printable(scrub_text(reason))
            if self._on_failure is not None:
                with contextlib.suppress(Exception):
                    self._on_failure(spans, reason, settle)
        settle()
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


#: the attribute Forwarder.on_end puts on a finished span: the cell it started in (None:
#: no cell); the span the SDK passes to on_end is its own copy, the one that is exported
_CELL_TAG = "_llmtrace_nb_cell"
_UNTAGGED = object()


class _CellTracker(SpanExporter):
    """Hands each batch on unchanged, keeping it at hand for the export's thread: the
    spans the policy passes on are copies, and only the originals carry their cell."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        #: spans the batch processor took off its queue (one export at a time: the
        #: SDK's export lock)
        self.taken = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.taken += len(spans)
        _exporting.originals = spans
        try:
            return self.inner.export(spans)
        finally:
            _exporting.originals = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


class _Pipeline:
    """One configured destination: batch processor, counters, policy, exporter."""

    def __init__(self, config: ForwardConfig, cell_roots: Callable[[], Mapping[int, int]],
                 prices: PriceBook, content: Callable[[], bool] = lambda: True,
                 on_failure: Callable[[str, Sequence[ReadableSpan], str, Callable[[], None]],
                                      None] | None = None,
                 recall: Callable[[int], Sequence[ReadableSpan]] = lambda trace_id: (),
                 ) -> None:
        self.config = config
        self.counter = CountingExporter(
            make_exporter(config, DeadlineSession(config.timeout_s)),  # (unused over gRPC)
            # a failure is told with the endpoint its spans were sent to: this one
            on_failure=None if on_failure is None else partial(on_failure, config.endpoint))
        self.policy = PolicyExporter(self.counter, redact=config.redact, only=config.only,
                                     cell_roots=cell_roots, prices=prices, content=content,
                                     recall=recall)
        self.tracker = _CellTracker(self.policy)
        self.batch = BatchSpanProcessor(self.tracker, max_queue_size=MAX_QUEUE,
                                        schedule_delay_millis=1000,
                                        export_timeout_millis=int(config.timeout_s * 1000))
        # The SDK says nowhere how many spans wait in the batch processor: its queue is
        # read where the installed SDK keeps it (_capture/sdk.py). An SDK that keeps it
        # elsewhere: what is handed over and what is taken off are counted here.
        self._queue = batch_queue(self.batch, MAX_QUEUE)
        #: whether spans handed over are counted (``hand``): no queue to read
        self.counting = self._queue is None
        self._handed = 0
        self._count_lock = threading.Lock()
        fresh_locks_after_fork(self, "_count_lock")
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
        """Spans waiting in the batch processor's queue."""
        queue = self._queue
        if queue is not None:
            return len(queue)
        with self._count_lock:
            return max(self._handed - self.tracker.taken - self.dropped, 0)

    def hand(self, span: ReadableSpan) -> None:
        """Count a span handed to the batch processor, as its queue takes it (sampled
        spans only), when its queue cannot be read."""
        context = span.context
        if context is not None and context.trace_flags.sampled:
            with self._count_lock:
                self._handed += 1

    def stop(self, wait_s: float) -> None:
        """Shut down, waiting at most ``wait_s`` (a dead endpoint must not hold us)."""
        with self._flush_lock:
            self._stopped = True
        thread = threading.Thread(target=self.batch.shutdown, name="llmtrace-forward-stop",
                                  daemon=True)
        thread.start()
        thread.join(wait_s)


def _no_cell() -> CellRef | None:
    return None


def _spans(n: int) -> str:
    return f"{n:,} span{'' if n == 1 else 's'}"


def cell_label(cell: CellRef) -> str:
    """``cell [12]``, or with its name ``cell [12] rag-eval``."""
    plain = f"cell [{cell.number}]" if cell.number is not None else "cell"
    if not cell.name or cell.name == plain:
        return plain
    return f"{plain} {_printable(cell.name, 80)}"


@dataclass
class _Untold:
    """The failed spans of one endpoint not told yet: by cell, and why they failed."""

    reasons: list[str] = field(default_factory=list)
    #: CellRef.seq (None: outside any cell) -> the cell and how many of its spans
    cells: dict[int | None, tuple[CellRef | None, int]] = field(default_factory=dict)

    def spans(self) -> int:
        return sum(n for _, n in self.cells.values())

    def whose(self) -> str:
        """``of cell [12] rag-eval``, ``outside any cell``, or the share of each:
        ``(2 of cell [11], 1 of cell [12] rag-eval, 1 outside any cell)``."""
        cells = sorted(((c, n) for c, n in self.cells.values() if c is not None),
                       key=lambda entry: entry[0].seq)
        outside = sum(n for c, n in self.cells.values() if c is None)
        if not cells:
            return "outside any cell"
        if len(cells) == 1 and not outside:
            return f"of {cell_label(cells[0][0])}"
        shown = cells if len(cells) <= 4 else cells[:3]
        parts = [f"{n:,} of {cell_label(c)}" for c, n in shown]
        if len(shown) < len(cells):
            rest = cells[len(shown):]
            parts.append(f"{sum(n for _, n in rest):,} of {len(rest):,} more cells")
        if outside:
            parts.append(f"{outside:,} outside any cell")
        return "(" + ", ".join(parts) + ")"

    def why(self) -> str:
        return "; ".join(self.reasons[:3]) + ("; …" if len(self.reasons) > 3 else "")


def failure_warning(untold: Mapping[str, _Untold]) -> str | None:
    """The one line that tells of failed spans, by endpoint (as they were sent):

    ``llmtrace_nb: 2 spans of cell [12] rag-eval could not be forwarded to URL (ERROR);
    they are still in the notebook``, or, when spans failed at more than one endpoint,
    ``llmtrace_nb: 3 spans could not be forwarded; they are still in the notebook: 2 spans
    of cell [11] to URL1 (ERROR1); 1 span of cell [12] to URL2 (ERROR2)``.
    """
    groups = [(u.spans(), u.whose(), _printable(scrub_text(endpoint)), u.why())
              for endpoint, u in untold.items() if u.spans()]
    if not groups:
        return None
    total = sum(n for n, *_ in groups)
    still = "it is" if total == 1 else "they are"
    if len(groups) == 1:
        n, whose, endpoint, why = groups[0]
        return (f"llmtrace_nb: {_spans(n)} {whose} could not be forwarded to {endpoint} "
                f"({why}); {still} still in the notebook")
    return (f"llmtrace_nb: {_spans(total)} could not be forwarded; {still} still in the "
            "notebook: " + "; ".join(f"{_spans(n)} {whose} to {endpoint} ({why})"
                                     for n, whose, endpoint, why in groups))


class Forwarder(SpanProcessor):
    """Added to the provider once per session; forwarding on/off swaps its pipeline.

    ``active_cell`` tells the cell spans starting now belong to and ``cells`` the cells
    there are (the session gives its collector's; without them no span has a cell): a
    warning names the cells whose spans failed to go out. ``recall`` gives the spans of a
    trace the session still holds (``--only feedback``).
    """

    def __init__(self, cell_roots: Callable[[], Mapping[int, int]], prices: PriceBook,
                 content: Callable[[], bool] = lambda: True, *,
                 active_cell: Callable[[], CellRef | None] | None = None,
                 cells: Callable[[], Sequence[CellRef]] | None = None,
                 recall: Callable[[int], Sequence[ReadableSpan]] = lambda trace_id: ()
                 ) -> None:
        self._cell_roots = cell_roots
        #: a trace's spans the session still holds (--only feedback: a trace kept late)
        self._recall = recall
        self._prices = prices
        #: whether content is captured now; when not, no text leaves (whoever recorded it)
        self._content = content
        self._active_cell = active_cell or _no_cell
        self._cells: Callable[[], Sequence[CellRef]] = cells or list
        self._pipeline: _Pipeline | None = None
        #: span id -> the cell it started in (None: no cell), while it runs
        self._cell_of: dict[int, CellRef | None] = {}
        self._catcher = _ErrorCatcher()
        #: failed spans not told yet, by the endpoint they were sent to
        self._untold: dict[str, _Untold] = {}
        self._lock = threading.Lock()
        fresh_locks_after_fork(self, "_lock")
        atexit.register(self.stop)

    @property
    def config(self) -> ForwardConfig | None:
        pipeline = self._pipeline
        return pipeline.config if pipeline else None

    def start(self, config: ForwardConfig) -> None:
        pipeline = _Pipeline(config, self._cell_roots, self._prices, self._content,
                             on_failure=self._failed, recall=self._recall)
        for name in _QUIET_LOGGERS:
            logger = logging.getLogger(name)
            if self._catcher not in logger.filters:
                logger.addFilter(self._catcher)
        for name in ("urllib3.connection", "urllib3.connectionpool"):
            logging.getLogger(name).addFilter(_NOT_OUR_REQUESTS)  # (once: filters are a set)
        old, self._pipeline = self._pipeline, pipeline
        if old is not None:
            # its last spans still go out, to it; what fails there is told with it
            threading.Thread(target=old.stop, args=(SHUTDOWN_WAIT_S,),
                             name="llmtrace-forward-stop", daemon=True).start()

    def stop(self, wait: bool = True) -> None:
        """Stop forwarding; the spans already queued still go out (waiting at most
        SHUTDOWN_WAIT_S, or not at all with ``wait=False``)."""
        old, self._pipeline = self._pipeline, None
        if old is None:
            return
        if wait:
            old.stop(SHUTDOWN_WAIT_S)
        else:
            threading.Thread(target=old.stop, args=(SHUTDOWN_WAIT_S,),
                             name="llmtrace-forward-stop", daemon=True).start()

    # -- SpanProcessor: the hot path is an attribute read or two and the batch enqueue --

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self._pipeline is not None:
            # the cell the span belongs to (as the collector has it), for a warning
            self._cell_of[span.context.span_id] = self._active_cell()

    def on_end(self, span: ReadableSpan) -> None:
        # (single dict operations are atomic: no lock, as in the collector)
        cell = (self._cell_of.pop(span.context.span_id, _UNTAGGED)
                if self._cell_of else _UNTAGGED)
        pipeline = self._pipeline
        if pipeline is not None:
            if cell is not _UNTAGGED:
                # on the finished span (a copy the SDK made for on_end), which is what
                # reaches the exporter
                try:  # noqa: SIM105 - on the hot path, where a try costs nothing
                    setattr(span, _CELL_TAG, cell)
                except AttributeError:  # a span class with slots: found by its trace
                    pass
            if pipeline.queued() >= MAX_QUEUE:  # the queue will evict its oldest span
                pipeline.dropped += 1
            pipeline.batch.on_end(span)
            if pipeline.counting:
                pipeline.hand(span)

    def shutdown(self) -> None:
        self.stop()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # callers on the cell's thread must never wait on the network

    # -- failures (in the exporters' threads) ------------------------------------------

    def _failed(self, endpoint: str, spans: Sequence[ReadableSpan], reason: str,
                count: Callable[[], None]) -> None:
        """Note, to be told, that ``spans`` could not be sent to ``endpoint``; ``count``
        counts them as failed, at the same moment for a warning being made."""
        tags: dict[int, Any] = {}  # span id -> its cell, from the batch as it was handed over
        for span in getattr(_exporting, "originals", None) or ():
            tag = getattr(span, _CELL_TAG, _UNTAGGED)
            if tag is not _UNTAGGED and span.context is not None:
                tags[span.context.span_id] = tag
        by_trace: dict[int, CellRef] | None = None
        found: dict[int | None, tuple[CellRef | None, int]] = {}
        for span in spans:
            context = span.context
            if context is None:
                cell = None
            elif context.span_id in tags:
                cell = tags[context.span_id]
            else:
                # not seen starting (forwarding began after it did), or held by --only
                # since an earlier batch: a traced cell's spans share its root's trace
                if by_trace is None:
                    by_trace = {c.trace_id: c for c in self._cells() if c.trace_id is not None}
                cell = by_trace.get(context.trace_id)
            key = cell.seq if isinstance(cell, CellRef) else None
            _, n = found.get(key, (None, 0))
            found[key] = (cell if isinstance(cell, CellRef) else None, n + 1)
        with self._lock:
            untold = self._untold.setdefault(endpoint, _Untold())
            if reason not in untold.reasons and len(untold.reasons) < 4:
                untold.reasons.append(reason)
            for key, (cell, n) in found.items():
                _, had = untold.cells.get(key, (None, 0))
                untold.cells[key] = (cell, had + n)
            count()

    # -- after a cell --------------------------------------------------------------------

    def nudge(self) -> None:
        """Send what the cell made now, from a daemon thread: the cell does not wait, and
        a flush still running is not joined by another."""
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.flush_soon()

    def new_failure_warning(self) -> str | None:
        """One line telling of the spans that failed to go out since the last one was
        made (whose they were, where they were sent, why they failed), else None."""
        with self._lock:
            untold, self._untold = self._untold, {}
        return failure_warning(untold)

    def counts(self) -> dict[str, int] | None:
        pipeline = self._pipeline
        if pipeline is None:
            return None
        c = pipeline.counter
        return {"sent": c.sent, "failed": c.failed,
                "queued": pipeline.queued() + c.in_flight + pipeline.policy.waiting(),
                "filtered": pipeline.policy.filtered, "dropped": pipeline.dropped}
