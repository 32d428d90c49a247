"""A real Jupyter kernel for the framework tests: cells run as a notebook runs them.

The kernel is an ipykernel started with jupyter_client's ``KernelManager`` on a spec for
this interpreter, in a controlled environment: no ``OTEL_*`` (nor Traceloop, Logfire,
openlit, provider key) variables, ``TRACELOOP_TELEMETRY=false``, and a guard installed
before the first cell that refuses — and records — every connection or name lookup that
is not on loopback, so a framework that tries to reach the internet (a tracing exporter,
telemetry) fails the test instead of leaving the machine.

Cells run one by one through the shell channel, as a frontend sends them; a cell that
fails fails the test with its traceback. :meth:`Kernel.report` runs a last cell that prints
what llmtrace_nb collected as JSON (see ``REPORT_CELL``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from run_notebook import ensure_kernel

#: environment variables the kernel never inherits (prefixes)
DROPPED_ENV = ("OTEL_", "TRACELOOP_", "LOGFIRE_", "OPENLIT_", "OPENAI_", "ANTHROPIC_",
               "LANGCHAIN_", "LANGSMITH_", "AGENTS_", "PHOENIX_", "ARIZE_")
#: proxies would route even demo traffic elsewhere
DROPPED_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy")
KERNEL_ENV = {
    "TRACELOOP_TELEMETRY": "false",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "PYTHONWARNINGS": "ignore",
}

#: the first cell: the loopback-only network guard (an audit hook cannot be removed)
GUARD_CELL = """\
import ipaddress as _harness_ip, sys as _harness_sys
_harness_blocked = []

def _harness_guard(event, args):
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) and address else None
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
        host = args[0]
    else:
        return
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not host or host == "localhost":
        return
    try:
        if _harness_ip.ip_address(host.split("%")[0]).is_loopback:
            return
    except ValueError:
        pass
    _harness_blocked.append(f"{event} {host}")
    raise OSError(f"the test harness allows loopback only, not {host}")

_harness_sys.addaudithook(_harness_guard)
"""

#: the last cell: everything the checks need, printed as one JSON line after MARKER
MARKER = "@@LLMTRACE-REPORT@@"
REPORT_CELL = f"""\
import json as _harness_json
import llmtrace_nb as _harness_lt

def _harness_records(df, columns=None):
    df = df.reset_index() if columns is None else df[[c for c in columns if c in df.columns]]
    return _harness_json.loads(df.to_json(orient="records", date_format="iso",
                                          default_handler=str))

_harness_frame = _harness_lt.spans_df()
try:  # the instrumentation scope of each span, for diagnosis only (a private column)
    from llmtrace_nb._notebook import session as _harness_session
    _harness_private = _harness_session.current().frames.spans(keep_private=True)
    _harness_scopes = dict(zip(_harness_private["span_id"], _harness_private["_scope"]))
except Exception:
    _harness_scopes = {{}}
_harness_spans = _harness_frame.assign(
    has_input_messages=_harness_frame["input_messages"].map(lambda m: bool(m)),
    has_output_messages=_harness_frame["output_messages"].map(lambda m: bool(m)),
    attribute_keys=_harness_frame["attributes"].map(lambda a: sorted(a or {{}})),
    scope=_harness_frame["span_id"].map(lambda s: _harness_scopes.get(s)))
_harness_columns = ["trace_id", "span_id", "parent_span_id", "name", "kind", "status",
                    "error_type", "cell", "cell_name", "provider", "request_model",
                    "response_model", "model", "input_tokens", "output_tokens",
                    "total_tokens", "cache_read_tokens", "cache_write_tokens",
                    "reasoning_tokens", "duplicate_of", "cost_usd", "ttft_ms",
                    "is_streaming", "finish_reasons", "has_input_messages",
                    "has_output_messages", "attribute_keys", "scope", "start_time",
                    "end_time"]
_harness_calls = _harness_lt.llm_calls_df()
_harness_tools = _harness_spans[_harness_spans["kind"] == "tool"]
_harness_cells = _harness_lt.cells_df().drop(columns=["tags"])
print("{MARKER}" + _harness_json.dumps({{
    "spans": _harness_records(_harness_spans, _harness_columns),
    "llm_calls": _harness_records(_harness_calls.assign(
        has_input_messages=_harness_calls["input_messages"].map(lambda m: bool(m)),
        has_output_messages=_harness_calls["output_messages"].map(lambda m: bool(m))),
        _harness_columns),
    "tools": _harness_records(_harness_tools, ["span_id", "name", "cell_name",
                                               "input_messages", "output_messages"]),
    "attributes": {{sid: {{k: str(v)[:300] for k, v in (attrs or {{}}).items()}}
                   for sid, attrs in zip(_harness_spans["span_id"],
                                         _harness_spans["attributes"])}},
    "cells": _harness_records(_harness_cells, list(_harness_cells.columns)),
    "summary": _harness_records(_harness_lt.summary()),
    "unpriced_models": list(_harness_calls.attrs.get("unpriced_models", [])),
    "dropped_spans": int(_harness_frame.attrs.get("dropped_spans", 0)),
    "status": _harness_lt.status(),
    "blocked": list(_harness_blocked),
}}, default=str))
"""

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _plain(text: str) -> str:
    return _ANSI.sub("", text)


class CellError(AssertionError):
    """A cell raised in the kernel."""


class Kernel:
    """One fresh ipykernel; use as a context manager (the kernel is shut down on exit)."""

    def __init__(self, env: dict[str, str] | None = None, startup_timeout: float = 60) -> None:
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(DROPPED_ENV) and k not in DROPPED_NAMES}
        self.env.update(KERNEL_ENV)
        self.env.update(env or {})
        self.startup_timeout = startup_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="llmtrace-fw-")
        self.cwd = Path(self._tmp.name)
        # logfire and others write state files to the working directory and HOME; IPython
        # gets a fresh profile (no startup files of the machine's user)
        self.env["HOME"] = str(self.cwd)
        self.env["IPYTHONDIR"] = str(self.cwd / ".ipython")
        self.km: KernelManager | None = None
        self.kc: Any = None
        #: (source, stdout) of every cell run so far
        self.history: list[tuple[str, str]] = []

    def __enter__(self) -> Kernel:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        """Start the kernel and install the network guard; on any failure, shut down."""
        try:
            self.km = KernelManager(kernel_name=ensure_kernel())
            self.km.start_kernel(env=self.env, cwd=str(self.cwd))
            self.kc = self.km.client()
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=self.startup_timeout)
            self.run(GUARD_CELL, store_history=False)
        except BaseException:
            self.shutdown()
            raise

    def stop(self) -> None:
        """Shut the kernel down as a frontend's restart does: a shutdown request, so its
        exit handlers run (killed only if it does not exit in time); then ``shutdown``."""
        kc, km = self.kc, self.km
        if kc is not None:
            kc.stop_channels()
            self.kc = None
        if km is not None and km.has_kernel:
            km.shutdown_kernel(now=False)
            self.km = None
        self.shutdown()

    def shutdown(self) -> None:
        """Stop the channels, kill the kernel process, remove its files. Idempotent."""
        kc, self.kc = self.kc, None
        km, self.km = self.km, None
        try:
            if kc is not None:
                kc.stop_channels()
        finally:
            try:
                if km is not None and km.has_kernel:
                    km.shutdown_kernel(now=True)  # kills the process, removes its files
            finally:
                self._tmp.cleanup()

    def run(self, source: str, timeout: float = 120, store_history: bool = True) -> str:
        """Run one cell; returns what it printed (stdout, then text/plain of displays).

        A cell that raises fails the test with the cell, its output and its traceback.
        """
        assert self.kc is not None, "the kernel is not running"
        source = textwrap.dedent(source).strip("\n")
        out: list[str] = []
        err: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                (out if content["name"] == "stdout" else err).append(content["text"])
            elif kind in ("display_data", "execute_result", "update_display_data"):
                text = content.get("data", {}).get("text/plain")
                if text and kind != "update_display_data":
                    out.append(text + "\n")

        try:
            reply = self.kc.execute_interactive(source, store_history=store_history,
                                                timeout=timeout, output_hook=hook,
                                                allow_stdin=False)
        except TimeoutError:
            assert self.km is not None
            self.km.interrupt_kernel()
            pytest.fail(f"cell did not finish in {timeout} s:\n{source}\n--- output:\n"
                        f"{''.join(out)}{''.join(err)}", pytrace=False)
        content = reply["content"]
        printed = "".join(out)
        self.history.append((source, printed))
        if content["status"] != "ok":
            tb = _plain("\n".join(content.get("traceback", [])))
            raise CellError(f"cell failed: {content.get('ename')}: {content.get('evalue')}\n"
                            f"--- cell:\n{source}\n--- stdout:\n{printed[-3000:]}\n"
                            f"--- stderr:\n{''.join(err)[-3000:]}\n--- traceback:\n{tb}")
        return printed

    def report(self) -> dict[str, Any]:
        """What llmtrace_nb collected: spans, LLM calls, tool rows, cells, summary, status,
        and the network attempts the guard refused."""
        printed = self.run(REPORT_CELL, store_history=False, timeout=120)
        line = next((ln for ln in printed.splitlines() if ln.startswith(MARKER)), None)
        assert line is not None, f"the report cell printed no report:\n{printed[-3000:]}"
        return json.loads(line[len(MARKER):])
