"""Arize Phoenix on loopback: a real OTLP backend for the tests and the benchmarks.

Phoenix pins packages that clash with ours, so it lives in a virtual environment of its
own (build/phoenix-venv, made on first use, about a minute) and runs as a separate
process; anything that needs its client runs that venv's python too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOENIX = "arize-phoenix==20.26.1"
VENV = ROOT / "build" / "phoenix-venv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def phoenix_python() -> Path:
    """The Phoenix venv's python, building the venv first if it is missing or was made
    for another Phoenix release (a marker file names the release it holds)."""
    python = VENV / "bin" / "python"
    marker = VENV / f".installed-{PHOENIX}"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", PHOENIX], check=True,
                       timeout=900)
        marker.touch()
    return python


@contextmanager
def serve(workdir: Path, timeout: float = 120) -> Iterator[str]:
    """Run ``phoenix serve`` on free loopback ports with its data in ``workdir``, and
    yield its base URL once /healthz answers; the server is stopped at exit.

    A fresh ``workdir`` is a fresh Phoenix: no projects, no spans. Its log goes to
    ``workdir/serve.log`` and its tail is in the error if it does not come up.
    """
    python = phoenix_python()
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(grpc_port), "PHOENIX_WORKING_DIR": str(workdir),
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    log_path = workdir / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(python.parent / "phoenix"), "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, proc, log_path, timeout)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path,
                  timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"phoenix serve exited ({proc.returncode}):\n"
                               + log_path.read_text(errors="replace")[-2000:])
        if time.monotonic() > deadline:
            raise RuntimeError(f"phoenix did not answer {url}/healthz within {timeout:.0f} s:\n"
                               + log_path.read_text(errors="replace")[-2000:])
        time.sleep(0.5)
