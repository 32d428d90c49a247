"""The path users run: the real ``openai`` client, opentelemetry-instrumentation-openai,
``%%trace`` in a real ipykernel, against the demo server on loopback.

Memory per retained call: the kernel's traced memory (tracemalloc, started after a warm-up
cell) grown by a ``%%trace`` cell of N non-streamed calls, after the cell's view was
built and shown and after ``spans_df()``, ``cells_df()`` and ``summary()`` were read and
dropped, divided by N. The demo server runs in this process, so its log of answers is
not counted; what the kernel published (the view) is not kept by the kernel.

    python -m benchmarks --case real-memory
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_KB = 2.0


def _kernel() -> tuple[Any, Any]:
    from jupyter_client.manager import start_new_kernel

    sys.path.insert(0, str(HERE.parent / "scripts"))
    from run_notebook import ensure_kernel  # scripts/ is not a package

    return start_new_kernel(kernel_name=ensure_kernel())


def _run(client: Any, code: str) -> str:
    """Run code in the kernel; its stdout, or RuntimeError with the traceback."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            raise RuntimeError("\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(code, output_hook=hook, timeout=900)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"kernel: {reply['content'].get('evalue')}")
    return "".join(out)


def _calls(n: int, name: str) -> str:
    return (f"%%trace {name}\nfor i in range({n}):\n"
            "    client.chat.completions.create(model='gpt-4o-mini', messages=[\n"
            "        {'role': 'user', 'content': f'question {i} about the capital of France'}])")


def memory_per_call(n: int) -> dict[str, float]:
    """KB of kernel memory each of n calls keeps; and the figure's parts (top lines)."""
    from llmtrace_nb.demo import DemoServer

    server = DemoServer().start()
    manager, client = _kernel()
    try:
        _run(client, "%load_ext llmtrace_nb\nimport gc, json, tracemalloc, openai, "
                     "llmtrace_nb\n"
                     f"client = openai.OpenAI(base_url={server.base_url!r}, "
                     "api_key='sk-demo', max_retries=0)")
        _run(client, _calls(50, "warm"))
        _run(client, "llmtrace_nb.spans_df(); gc.collect(); tracemalloc.start(); "
                     "base = tracemalloc.get_traced_memory()[0]")
        _run(client, _calls(n, "measured"))
        _run(client, "llmtrace_nb.spans_df(); llmtrace_nb.cells_df(); llmtrace_nb.summary()"
                     "; None")
        text = _run(client, "gc.collect()\n"
                            "grown = tracemalloc.get_traced_memory()[0] - base\n"
                            f"print(json.dumps({{'kb_per_call': grown / {n} / 1024}}))")
        return json.loads(text.strip().splitlines()[-1])
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        server.stop()


# -- per-call overhead ----------------------------------------------------------------------
#
# Each run is a fresh interpreter making N calls after a warm-up (per_call_client.py);
# the variants take turns, round after round, so a slow spell of this shared machine
# hits them all alike, and each variant's figure is the median of its rounds' medians.
# Phoenix runs in its own venv (it pins packages that clash with ours), whose openai is
# compared with a bare run in the same venv; its spans go to a loopback sink that
# answers 200 to every export.

PER_CALL_TARGET_US = 150.0
STREAM_TARGET = 0.10


class _Sink:
    """An OTLP/HTTP endpoint on loopback that accepts every export and keeps nothing."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Accept(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _one_run(python: str, mode: str, stream: bool, n: int, base_url: str, sink: str
             ) -> dict[str, float]:
    import subprocess

    out = subprocess.run(
        [python, str(HERE / "per_call_client.py"), mode, "stream" if stream else "plain",
         str(n), base_url, sink], check=True, capture_output=True, text=True, timeout=900)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: float(v) for k, v in figures.items()}


def per_call(n: int, rounds: int, phoenix_python: str | None) -> dict[str, list[float]]:
    """Median µs per call of each variant in each round: ``bare``, ``instrumentation``
    (the OpenAI instrumentation alone), ``ours``, and with
    a Phoenix python ``phoenix-bare`` and ``phoenix``; ``:stream`` for streamed calls;
    ``:paired`` for the µs added measured inside the run's process (per_call_client)."""
    from llmtrace_nb.demo import DemoServer

    server, sink = DemoServer().start(), _Sink()
    variants = [(sys.executable, "bare"), (sys.executable, "instrumentation"),
                (sys.executable, "ours")]
    if phoenix_python:
        variants += [(phoenix_python, "phoenix-bare"), (phoenix_python, "phoenix")]
    runs: dict[str, list[float]] = {}
    try:
        for _ in range(rounds):
            for stream in (False, True):
                for python, name in variants:
                    mode = name.removeprefix("phoenix-") if name != "phoenix" else name
                    key = name + (":stream" if stream else "")
                    figures = _one_run(python, mode, stream, n, server.base_url, sink.url)
                    runs.setdefault(key, []).append(figures["median_us"])
                    runs.setdefault(key + ":paired", []).append(figures["paired_us"])
    finally:
        sink.close()
        server.stop()
    return runs
