"""Forwarding to a real Arize Phoenix on loopback, read back with Phoenix's own client.

Phoenix pins packages that clash with ours, so it lives in a virtual environment of its
own (build/phoenix-venv, made on first use, about a minute). Its ingestion is
asynchronous: the test polls with a deadline instead of asserting at once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb

from conftest import ROOT, run

PHOENIX = "arize-phoenix==20.26.1"
VENV = ROOT / "build" / "phoenix-venv"
READ_BACK = """
import json, sys
from phoenix.client import Client
df = Client(base_url=sys.argv[1]).spans.get_spans_dataframe(project_identifier="default")
cols = [c for c in ("context.span_id", "name", "attributes.llm.token_count.prompt",
                    "attributes.llm.token_count.completion") if c in df.columns]
print(json.dumps(df[cols].astype(object).where(df[cols].notna(), None).to_dict("records"),
                 default=str))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _phoenix_python() -> Path:
    python = VENV / "bin" / "python"
    marker = VENV / f".installed-{PHOENIX}"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", PHOENIX], check=True,
                       timeout=900)
        marker.touch()
    return python


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = _phoenix_python()
    port, grpc_port = _free_port(), _free_port()
    env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(grpc_port),
           "PHOENIX_WORKING_DIR": str(tmp_path_factory.mktemp("phoenix")),
           "PHOENIX_TELEMETRY_ENABLED": "false"}
    log = open(tmp_path_factory.mktemp("phoenix-log") / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(python.parent / "phoenix"), "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, "phoenix serve exited; see its log"
            assert time.monotonic() < deadline, "phoenix did not start within 120 s"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_spans_reach_phoenix(shell: InteractiveShell, demo_server: object,
                             phoenix: str) -> None:
    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url,  # type: ignore[attr-defined]
                                            api_key="k")
    run(shell, f"%llmtrace forward {phoenix}/v1/traces")
    try:
        run(shell, "%%trace to phoenix --quiet\n"
                   "for q in ['one', 'two words', 'three more words']:\n"
                   "    client.chat.completions.create(model='gpt-4o-mini',\n"
                   "        messages=[{'role': 'user', 'content': q}])")
        ours = llmtrace_nb.spans_df().set_index("span_id")
        deadline = time.monotonic() + 120
        theirs: list[dict] = []
        while time.monotonic() < deadline:
            proc = subprocess.run([str(VENV / "bin" / "python"), "-c", READ_BACK, phoenix],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr[-2000:]
            theirs = json.loads(proc.stdout.strip().splitlines()[-1])
            if len(theirs) >= len(ours):
                break
            time.sleep(2)
        assert len(theirs) == len(ours) == 4
        for span in theirs:
            row = ours.loc[span["context.span_id"]]
            assert span["name"] == row["name"]
            if row["kind"] == "llm":
                assert span["attributes.llm.token_count.prompt"] == row["input_tokens"]
                assert span["attributes.llm.token_count.completion"] == row["output_tokens"]
    finally:
        run(shell, "%llmtrace forward off")
