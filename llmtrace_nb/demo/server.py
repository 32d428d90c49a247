"""The HTTP side: routes, the threaded server and its handler, :class:`DemoServer`,
:func:`start` and the command line (``python -m llmtrace_nb.demo``)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import itertools
import json
import signal
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from ._answers import _Answer
from ._common import JSON, ApiError, _require
from .anthropic import _anthropic_messages
from .faults import FaultInjection, _Failure
from .openai import _chat_completions, _embeddings, _models, _responses

#: the number in a reply's ids (``chatcmpl-demo-N``, ``resp_demo_N``, ``call_demo_N``, …),
#: counted across every demo server of the process: a provider's ids never repeat, and
#: the OpenAI instrumentation keeps Responses state by response id, so a second server
#: counting from 1 again had its replies merged with the first server's.
_ID_NUMBERS = itertools.count(1)

#: how many answered requests ``DemoServer.answered`` keeps (the oldest are dropped)
ANSWERED_KEPT = 100_000


# --------------------------------------------------------------------------- routes


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


def _check_loopback(host: str) -> None:
    # The server checks no credentials, so it must never be reachable from the network.
    try:
        loopback = host == "localhost" or ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"DemoServer only binds to IPv4 loopback addresses, not {host!r}")


class DemoServer(FaultInjection):
    """A deterministic OpenAI- and Anthropic-compatible server on ``127.0.0.1``.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. Thread-safe. The
    endpoints, replies, token accounting, ``answered`` records and fault injection are
    described in the ``llmtrace_nb.demo`` docstring.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        An IPv4 loopback address (or ``"localhost"``) to bind to.
    port : int, default 0
        The port; 0 picks a free one (read it back as :attr:`port`).
    latency : float, default 0.0
        Seconds before every response (the first chunk, for streams).
    chunk_delay : float, default 0.0
        Seconds between stream chunks.

    Raises
    ------
    ValueError
        ``host`` is not a loopback address: the server checks no credentials.

    Examples
    --------
    >>> import openai
    >>> from llmtrace_nb.demo import DemoServer
    >>> with DemoServer() as srv:  # doctest: +SKIP
    ...     client = openai.OpenAI(base_url=srv.base_url, api_key="sk-demo")
    ...     client.chat.completions.create(
    ...         model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
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
        """Bind and serve in a daemon thread. A no-op if already running.

        Returns
        -------
        DemoServer
            ``self``, so ``srv = DemoServer().start()`` works.

        Raises
        ------
        OSError
            The port cannot be bound.
        """
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
        """Stop serving and close open connections. Safe to call more than once.

        Responses held by a latency or ``demo-slow`` are cut short.

        Returns
        -------
        None
        """
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
        package docstring); a copy, safe to keep while the server goes on."""
        with self._lock:
            return [dict(record) for record in self._answered]

    def clear_answered(self) -> None:
        """Empty :attr:`answered` (the request counter is not reset).

        Returns
        -------
        None
        """
        with self._lock:
            self._answered.clear()

    # -- used by the request handler

    def _begin_request(self) -> int:
        """Count the request; the number its ids carry (see ``_ID_NUMBERS``)."""
        with self._lock:
            self._requests += 1
        return next(_ID_NUMBERS)

    def _log_answered(self, record: JSON) -> None:
        with self._lock:
            self._answered.append(record)


def start(host: str = "127.0.0.1", port: int = 0, latency: float = 0.0,
          chunk_delay: float = 0.0) -> DemoServer:
    """Start a :class:`DemoServer` and return it.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        An IPv4 loopback address to bind to.
    port : int, default 0
        The port; 0 picks a free one.
    latency : float, default 0.0
        Seconds before every response.
    chunk_delay : float, default 0.0
        Seconds between stream chunks.

    Returns
    -------
    DemoServer
        The running server; it serves until :meth:`DemoServer.stop` or the end of the
        process (its thread is a daemon).

    Raises
    ------
    ValueError
        ``host`` is not a loopback address.

    Examples
    --------
    >>> from openai import OpenAI
    >>> import llmtrace_nb
    >>> client = OpenAI(base_url=llmtrace_nb.demo.start().base_url, api_key="x")  # doctest: +SKIP
    """
    return DemoServer(host=host, port=port, latency=latency, chunk_delay=chunk_delay).start()


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
    """Run the server in the foreground until Ctrl-C or SIGTERM.

    The (OpenAI) base URL is the first line on stdout; the Anthropic one goes to stderr.

    Parameters
    ----------
    argv : sequence of str, optional
        The command-line arguments (``--port``, ``--latency``, ``--chunk-delay``);
        default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status, 0.

    Examples
    --------
    >>> from llmtrace_nb.demo import main
    >>> main(["--port", "8123"])  # serves until Ctrl-C  # doctest: +SKIP
    """
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
