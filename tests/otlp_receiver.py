"""A minimal OTLP/HTTP traces receiver on 127.0.0.1, for tests: a real peer on loopback.

It decodes each request with opentelemetry-proto and keeps the spans. ``mode`` makes it
misbehave the ways real endpoints do: answer 500 or 429, answer slowly, answer garbage,
redirect (301/302/307/308 to ``location``), or answer another 2xx (204). Clearing ``gate``
holds every answer until it is set again. ``drip`` and
``black_hole`` are endpoints that accept a request and never finish answering it.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Any] = []  # opentelemetry.proto.trace.v1.Span
        self.resources: list[Any] = []
        self.requests: list[dict[str, str]] = []  # headers of each request
        self.mode = "ok"  # ok | 500 | 429 | 404 | slow | garbage | 301 | 302 | 307 | 308 | 204
        self.delay = 2.0
        self.location = "https://127.0.0.1/v1/traces"  # where redirects point
        self.posts = 0  # every POST, answered or not
        self.raw: list[bytes] = []  # every POST's body
        #: answers wait while it is clear (a test decides when an export ends)
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, request: ExportTraceServiceRequest, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(headers)
            for rs in request.resource_spans:
                self.resources.append(rs.resource)
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.spans) >= n:
                    return list(self.spans)
            time.sleep(0.05)
        with self._lock:
            return list(self.spans)

    def close(self) -> None:
        self.gate.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = self.server.mode
        with self.server._lock:
            self.server.posts += 1
            self.server.raw.append(body)  # the bytes as they arrived, for leak checks
        self.server.gate.wait(60)
        if mode == "slow":
            time.sleep(self.server.delay)
        if mode in ("500", "429", "404", "301", "302", "307", "308"):
            self.send_response(int(mode))
            if mode == "429":
                self.send_header("Retry-After", "1")
            if mode.startswith("3"):
                self.send_header("Location", self.server.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode == "garbage":
            self.wfile.write(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
            self.close_connection = True
            return
        if self.path != "/v1/traces":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.record(request, {k.lower(): v for k, v in self.headers.items()})
        if mode == "204":
            self.send_response(204)
            self.end_headers()
            return
        payload = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def black_hole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


class Drip:
    """An endpoint that reads each request, then answers one byte every ``interval`` s and
    never finishes: each read is quick, so only a deadline on the whole request ends it.

    ``part="status"`` drips the status line and then an endless header line; ``"headers"``
    sends the status line (200) and drips the endless header line; ``"body"`` sends whole
    headers (200, a huge Content-Length) and drips the body.
    """

    def __init__(self, part: str = "headers", interval: float = 0.5) -> None:
        self.part = part
        self.interval = interval
        self.connections = 0
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(None)
            stream = conn.makefile("rb")
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            stream.read(length)
            status, endless = b"HTTP/1.1 200 OK\r\n", b"X-Drip: " + b"." * 60_000
            if self.part == "status":
                head = status
            elif self.part == "headers":
                conn.sendall(status)
                head = b""
            else:
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
                        b"Content-Length: 1000000000\r\n\r\n")
                conn.sendall(head)
                head, endless = b"", b"\x00" * 60_000
            for byte in (head + endless):
                if self._stop.wait(self.interval):
                    return
                conn.sendall(bytes([byte]))
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for conn in self._conns:
            conn.close()


@contextmanager
def drip(part: str = "headers", interval: float = 0.5) -> Iterator[Drip]:
    server = Drip(part, interval)
    try:
        yield server
    finally:
        server.close()


def refused_url() -> str:
    """An address where nothing listens (the port was free a moment ago)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out
