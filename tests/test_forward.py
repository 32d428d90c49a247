"""Forwarding over OTLP to a real receiver on loopback: content, policy, faults, no loss."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._capture.collector import DEFAULT_MAX_SPANS
from llmtrace_nb._notebook import session
from llmtrace_nb._ship.forward import (
    EXPORT_TIMEOUT_S,
    SHUTDOWN_WAIT_S,
    ForwardConfigError,
    make_config,
    traces_endpoint,
)

from conftest import STORE, Output, run
from otlp_receiver import attributes, black_hole, receiver, refused_url


def forwarding_off(shell: InteractiveShell) -> None:
    """Forwarding off, and the endpoint left behind done with its last spans (within their
    deadline), their failures dropped untold: they are not another test's to see."""
    run(shell, "%llmtrace forward off")
    deadline = time.monotonic() + EXPORT_TIMEOUT_S + 5
    while time.monotonic() < deadline and any(
            t.name == "llmtrace-forward-stop" for t in threading.enumerate()):
        time.sleep(0.05)
    forwarder = session.require().forwarder
    if forwarder is not None:
        forwarder.new_failure_warning()


@pytest.fixture
def fwd(shell: InteractiveShell) -> Iterator[InteractiveShell]:
    yield shell
    forwarding_off(shell)


def told(out: Output) -> list[int]:
    """The span counts of the failure warnings a cell printed."""
    return [int(n.replace(",", "")) for n in re.findall(
        r"llmtrace_nb: ([\d,]+) spans? .*?could not be forwarded", out.stderr)]


SECRET = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX123"


def llm_cell(tokens: int = 100, prompt: str = "hello") -> str:
    """Cell code that makes one LLM span, with a secret in its recorded headers."""
    attrs = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": tokens,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.headers": str({"Authorization": f"Bearer {SECRET}"}),
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
    }
    return ("from opentelemetry import trace\n"
            f"with trace.get_tracer('t').start_as_current_span('openai.chat', "
            f"attributes={attrs!r}):\n"
            "    pass\n")


def status_once_sent(shell: InteractiveShell, n: int, timeout: float = 10.0) -> Output:
    """`%llmtrace status` once n spans count as sent. The receiver holds the spans before
    its answer reaches the exporter, and only the answer makes them count as sent."""
    deadline = time.monotonic() + timeout
    while (session.require().forwarder.counts() or {}).get("sent", 0) < n \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    return run(shell, "%llmtrace status")[1]


def by_name(spans: list) -> dict:
    return {s.name: s for s in spans}


def test_traced_cell_arrives_scrubbed(fwd: InteractiveShell) -> None:
    with receiver() as rx:
        _, out = run(fwd, f"%llmtrace forward {rx.url} --header x-team=ml")
        assert f"forwarding to {rx.url}/v1/traces" in out.text
        result, _ = run(fwd, "%%trace sent --quiet\n" + llm_cell())
        spans = rx.wait_for(2)
        assert sorted(s.name for s in spans) == ["openai.chat", "sent"]
        llm = attributes(by_name(spans)["openai.chat"])
        assert llm["gen_ai.usage.input_tokens"] == 100 and llm["gen_ai.request.model"] == "gpt-4o"
        assert SECRET not in json.dumps(llm) and "[REDACTED]" in llm["gen_ai.headers"]
        assert "hello" in llm["gen_ai.input.messages"]  # redact none: content goes as is
        root = attributes(by_name(spans)["sent"])
        assert root["llmtrace.cell.number"] == result.execution_count
        assert rx.requests[0]["x-team"] == "ml"
        out = status_once_sent(fwd, 2)
        assert "forward: " + rx.url in out.text and "2 sent, 0 failed" in out.text


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_redaction(fwd: InteractiveShell, mode: str) -> None:
    with receiver() as rx:
        run(fwd, f"%llmtrace forward {rx.url} --redact {mode}")
        run(fwd, "%%trace --quiet\n" + llm_cell(prompt="same prompt"))
        run(fwd, "%%trace --quiet\n" + llm_cell(prompt="same prompt"))
        llms = [attributes(s) for s in rx.wait_for(4) if s.name == "openai.chat"]
        assert len(llms) == 2
        for attrs in llms:
            assert "same prompt" not in json.dumps(attrs)
            assert attrs["gen_ai.usage.input_tokens"] == 100  # numbers are not content
        if mode == "hash":
            hashes = {a["gen_ai.input.messages"] for a in llms}
            assert len(hashes) == 1 and next(iter(hashes)).startswith("sha256:")
        else:
            assert all("gen_ai.input.messages" not in a for a in llms)
    # the notebook's own copy keeps the text
    assert "same prompt" in json.dumps(llmtrace_nb.llm_calls_df()["input_messages"].tolist())


def test_only_keeps_whole_traces_by_rule(fwd: InteractiveShell) -> None:
    with receiver() as rx:
        run(fwd, f"%llmtrace forward {rx.url} --only errors,slow:0.3,cost:0.05")
        run(fwd, "%%trace cheap --quiet\n" + llm_cell(tokens=100))  # dropped
        run(fwd, "%%trace failing --quiet\n" + llm_cell(tokens=100) + "1/0")  # kept: error
        run(fwd, "%%trace slow --quiet\nimport time; time.sleep(0.35)\n" + llm_cell(100))
        run(fwd, "%%trace costly --quiet\n" + llm_cell(tokens=100_000))  # $0.25 > 0.05
        run(fwd, "from opentelemetry import trace\n"
                 "with trace.get_tracer('t').start_as_current_span('outside ok'): pass\n"
                 "try:\n"
                 "    with trace.get_tracer('t').start_as_current_span('outside err'):\n"
                 "        raise ValueError\n"
                 "except ValueError: pass")
        spans = rx.wait_for(7)
        time.sleep(1.5)  # anything else would arrive by now
        names = sorted(s.name for s in rx.spans)
        assert names == sorted(["failing", "openai.chat", "slow", "openai.chat", "costly",
                                "openai.chat", "outside err"]), names
        _, out = run(fwd, "%llmtrace status")
        assert "3 left out by --only" in out.text
        assert len(spans) >= 7


def test_only_feedback_forwards_a_held_back_cell_when_judged_later(fwd: InteractiveShell
                                                                    ) -> None:
    with receiver() as rx:
        run(fwd, f"%llmtrace forward {rx.url} --only feedback:negative")
        run(fwd, "%%trace liked --quiet\n" + llm_cell())
        run(fwd, "%%trace disliked --quiet\n" + llm_cell(prompt="bad answer"))
        run(fwd, "%%trace judged inside --quiet\nimport llmtrace_nb\n" + llm_cell()
            + "llmtrace_nb.evaluate(None, 'feedback', label='incorrect')\n")
        time.sleep(1.5)  # the cells ended and were held back (two of them)
        assert sorted(s.name for s in rx.spans) == sorted([
            "judged inside", "openai.chat", "gen_ai.evaluation.result"])
        calls = llmtrace_nb.llm_calls_df()
        liked = calls[calls["cell_name"] == "liked"].iloc[0]
        disliked = calls[calls["cell_name"] == "disliked"].iloc[0]
        llmtrace_nb.evaluate(liked, "feedback", label="thumbs_up")  # not negative
        llmtrace_nb.evaluate(disliked, "feedback", score=-1, explanation="wrong")
        spans = rx.wait_for(6)
        time.sleep(1.5)
        names = sorted(s.name for s in rx.spans)
        assert names == sorted(["judged inside", "openai.chat", "gen_ai.evaluation.result",
                                "disliked", "openai.chat", "gen_ai.evaluation.result"]), names
        sent = {s.name: s for s in spans if attributes(s).get(
            "gen_ai.evaluation.explanation") == "wrong" or s.name == "disliked"}
        assert set(sent) == {"disliked", "gen_ai.evaluation.result"}
        ids = {s.span_id for s in rx.spans}
        assert len(ids) == len(rx.spans)  # nothing sent twice
        _, out = run(fwd, "%llmtrace status")
        assert "3 left out by --only" in out.text  # liked: its call, root, judgement


def test_only_feedback_sends_what_left_the_buffer_from_the_store(
        fwd: InteractiveShell, tmp_path: Path) -> None:
    """A thumb down, given later, on a call whose cell has left the buffer since (later
    cells pushed it out; its view still has the ids): the judgement finds the call in
    the store, and forwarding sends the whole held-back trace from there."""
    run(fwd, f"%llmtrace store {tmp_path / 'spans.sqlite'}")
    llmtrace_nb.enable(max_spans=50)
    try:
        with receiver() as rx:
            run(fwd, f"%llmtrace forward {rx.url} --only feedback:negative")
            result, _ = run(fwd, "%%trace long --quiet\n" + llm_cell().replace(
                "):\n    pass", ") as call:\n    pass") +
                "ctx = call.get_span_context()\n"
                "judged = {'trace_id': f'{ctx.trace_id:032x}', 'span_id': f'{ctx.span_id:016x}'}\n"
                "import llmtrace_nb\n"
                "for i in range(10):\n"
                "    with llmtrace_nb.span(f'step {i}', kind='tool'):\n"
                "        pass\n")
            assert result.success
            session.require().keeper.writer.flush()  # what the writer's thread does
            run(fwd, "%%trace later --quiet\nimport llmtrace_nb\n"
                     "for i in range(100):\n"
                     "    with llmtrace_nb.span(f'later {i}', kind='tool'):\n"
                     "        pass\n")
            judged = fwd.user_ns["judged"]
            assert judged["span_id"] not in set(llmtrace_nb.spans_df()["span_id"])  # evicted
            time.sleep(1.0)
            assert rx.spans == []  # held back: nothing negative yet
            llmtrace_nb.evaluate(judged, label="thumbs_down")
            spans = rx.wait_for(13)
            time.sleep(1.0)
            names = [s.name for s in rx.spans]
            assert len(names) == len({s.span_id for s in rx.spans}) == 13, names
            assert {"long", "openai.chat", "step 0", "step 9",
                    "gen_ai.evaluation.result"} == set(names) - {f"step {i}" for i in range(1, 9)}
            judgement = next(s for s in spans if s.name == "gen_ai.evaluation.result")
            assert judgement.parent_span_id.hex() == judged["span_id"]
            assert SECRET not in json.dumps([attributes(s) for s in rx.spans])
    finally:
        llmtrace_nb.enable(max_spans=DEFAULT_MAX_SPANS)
        run(fwd, f"%llmtrace store {STORE}")


def test_ten_thousand_spans_none_lost(fwd: InteractiveShell) -> None:
    with receiver() as rx:
        run(fwd, f"%llmtrace forward {rx.url}")
        run(fwd, "%%trace many --quiet\nimport llmtrace_nb\n"
                 "for i in range(10_000):\n"
                 "    with llmtrace_nb.span(f's{i}', kind='tool', i=i): pass")
        spans = rx.wait_for(10_001, timeout=60)
        assert len(spans) == 10_001
        assert len({s.span_id for s in spans}) == 10_001
        out = status_once_sent(fwd, 10_001)
        assert "10,001 sent, 0 failed, 0 queued, 0 dropped" in out.text


def _dead(kind: str) -> Iterator[str]:
    if kind == "refused":
        yield refused_url()
    elif kind == "dns":
        yield "http://no-such-collector.invalid:4318"  # .invalid never resolves
    elif kind == "black hole":
        with black_hole() as url:
            yield url
    else:
        with receiver() as rx:
            rx.mode = kind
            yield rx.url


@pytest.mark.parametrize("kind", ["refused", "dns", "black hole", "slow", "500", "429",
                                  "garbage"])
def test_bad_endpoints_never_hurt_the_cell(fwd: InteractiveShell, kind: str) -> None:
    gen = _dead(kind)
    url = next(gen)
    try:
        run(fwd, f"%llmtrace forward {url}")
        outs = []
        for _ in range(2):
            start = time.perf_counter()
            result, out = run(fwd, "%%trace --quiet\n" + llm_cell())
            assert result.success  # nothing raised into user code
            assert time.perf_counter() - start < 1.0  # (10 ms budget measured in benchmarks)
            outs.append(out)
            time.sleep(0.1)
        assert all(o.stderr.count("could not be forwarded") <= 1 for o in outs)
        assert len(llmtrace_nb.spans_df()) == 4  # still all in the notebook
        if kind in ("refused", "dns", "500", "garbage"):  # failures without a deadline
            # refused, dns and garbage are retried with backoff (1 s, 2 s, 4 s) until the next
            # wait would pass the export deadline: each cell's batch fails within it
            deadline = time.monotonic() + 2 * EXPORT_TIMEOUT_S + 5
            while time.monotonic() < deadline:
                counts = session.require().forwarder.counts()
                if counts["failed"] >= 4:
                    break
                run(fwd, "%llmtrace status")
                time.sleep(0.2)
            failed = session.require().forwarder.counts()["failed"]
            assert failed >= 4
            _, out = run(fwd, "%%trace --quiet\nx = 1")
            outs.append(out)
            # Every failure is told once, on the first traced cell that ends after it was
            # counted: a fast failure (500 is not retried) can be counted before its own
            # cell's end is told, so which cell says it varies; the sum does not.
            assert all(o.stderr.count("could not be forwarded") <= 1 for o in outs)
            # (the last cell's own root span may fail fast enough to be told with them)
            assert failed <= sum(sum(told(o)) for o in outs) <= failed + 1, \
                [o.stderr for o in outs]
    finally:
        run(fwd, "%llmtrace forward off")
        gen.close()


@pytest.mark.parametrize(("line", "message"), [
    ("forward localhost:4318", "not an http(s) URL"),
    ("forward ftp://host", "not an http(s) URL"),
    ("forward http://host:99999", "bad port"),
    ("forward http://h:4318 --protocol carrier-pigeon", "--protocol"),
    ("forward http://h:4318 --redact maybe", "--redact"),
    ("forward http://h:4318 --only fast", "bad rule"),
    ("forward http://h:4318 --only slow:-1", "bad rule"),
    ("forward http://h:4318 --only feedback", "bad rule"),
    ("forward http://h:4318 --only feedback:|", "bad rule"),
    ("forward http://h:4318 --header novalue", "KEY=VALUE"),
])
def test_bad_forward_arguments_change_nothing(fwd: InteractiveShell, line: str,
                                              message: str) -> None:
    with receiver() as rx:
        run(fwd, f"%llmtrace forward {rx.url}")
        _, out = run(fwd, f"%llmtrace {line}")
        assert message in out.text + out.stderr and "usage" in out.text + out.stderr
        assert session.require().forwarder.config.endpoint == f"{rx.url}/v1/traces"


def test_endpoint_rules() -> None:
    assert traces_endpoint("http://c:4318", "http/protobuf") == "http://c:4318/v1/traces"
    assert traces_endpoint("http://c:4318/", "http/protobuf") == "http://c:4318/v1/traces"
    assert traces_endpoint("https://c/v1/traces", "http/protobuf") == "https://c/v1/traces"
    assert traces_endpoint("http://c:4318/custom", "http/protobuf",
                           signal_specific=True) == "http://c:4318/custom"
    assert traces_endpoint("http://c:4317", "grpc") == "http://c:4317"
    with pytest.raises(ForwardConfigError):
        make_config("http://c:4318", only="errors,never")
    with pytest.raises(ValueError):
        llmtrace_nb.enable(forward="not a url")


def run_py(code: str, env: dict[str, str], timeout: float = 60) -> tuple[str, float]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | env
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, elapsed


def test_standard_environment_variables(tmp_path: Path) -> None:
    with receiver() as rx:
        out, _ = run_py("""
            from IPython.core.interactiveshell import InteractiveShell
            ip = InteractiveShell.instance()
            ip.run_line_magic("load_ext", "llmtrace_nb")
            ip.run_cell("%%trace env --quiet\\nx = 1", store_history=True)
            import llmtrace_nb
            print(llmtrace_nb.status())
        """, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.url,
              "OTEL_EXPORTER_OTLP_HEADERS": "x-token=abc%20def,x-other=1"})
        assert f"forwarded to {rx.url}/v1/traces" in out
        spans = rx.wait_for(1)  # sent at exit at the latest
        assert [s.name for s in spans] == ["env"]
        assert rx.requests[0]["x-token"] == "abc def"


#: the exit runs compare with: the same spans, nothing forwarded
EXIT_CODE_OFF = """
import llmtrace_nb
from llmtrace_nb import span
llmtrace_nb.enable()
for i in range(50):
    with span(f"s{i}"):
        pass
"""


def exit_seconds_of(code: str) -> float:
    """Seconds from the end of ``code``'s last statement to its process's end: what exit
    waits for (the interpreter's start and imports, which a busy host stretches, left out)."""
    out, _ = run_py(code + "\nimport time as _t\nprint('@@END', _t.time(), flush=True)\n", {})
    return time.time() - float(out.split("@@END")[1])


def test_exit_is_not_held_by_a_black_hole() -> None:
    with black_hole() as url:
        waited = exit_seconds_of(textwrap.dedent(f"""
            import llmtrace_nb
            from llmtrace_nb import span
            llmtrace_nb.enable(forward={url!r})
            for i in range(50):
                with span(f"s{{i}}"):
                    pass
        """))
    # at most SHUTDOWN_WAIT_S for the last spans, over the same run's exit without them
    # (the interpreter's own teardown takes 1-3 s on a busy host)
    off = exit_seconds_of(EXIT_CODE_OFF)
    assert waited - off < SHUTDOWN_WAIT_S + 1.5, (waited, off)


def test_replay_a_saved_file(fwd: InteractiveShell, tmp_path: Path) -> None:
    run(fwd, "%%trace replayed --quiet\n" + llm_cell())
    path = tmp_path / "s.jsonl"
    llmtrace_nb.save(path)
    ids = sorted(llmtrace_nb.spans_df()["span_id"])
    with receiver() as rx:
        proc = subprocess.run([sys.executable, "-m", "llmtrace_nb", "forward", str(path),
                               "--endpoint", rx.url], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "sent 2 spans" in proc.stdout
        spans = rx.wait_for(2)
        assert sorted(s.span_id.hex() for s in spans) == ids
        assert SECRET not in json.dumps([attributes(s) for s in spans])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("garbage\n")
    proc = subprocess.run([sys.executable, "-m", "llmtrace_nb", "forward", str(bad),
                           "--endpoint", "http://127.0.0.1:9"], capture_output=True, text=True)
    assert proc.returncode == 2 and "line 1" in proc.stderr


def test_hash_is_stable_sha256() -> None:
    from llmtrace_nb._ship.policy import _redactor

    redact = _redactor("hash")
    assert redact is not None
    assert redact("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


def test_grpc_forwarding(fwd: InteractiveShell) -> None:
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import (
        trace_service_pb2,
        trace_service_pb2_grpc,
    )

    received: list = []

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    received.extend(ss.spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        _, out = run(fwd, f"%llmtrace forward http://127.0.0.1:{port} --protocol grpc")
        assert "grpc" in out.text
        run(fwd, "%%trace over grpc --quiet\n" + llm_cell())
        deadline = time.monotonic() + 20
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(s.name for s in received) == ["openai.chat", "over grpc"]
        llm = attributes(next(s for s in received if s.name == "openai.chat"))
        assert SECRET not in json.dumps(llm)
    finally:
        server.stop(0)


def test_feedback_rules_read_and_print_back() -> None:
    from llmtrace_nb._ship.policy import Only

    assert str(Only.parse("errors, feedback:negative")) == "errors,feedback:negative"
    own = Only.parse("feedback:Bad|awful")
    assert str(own) == "feedback:awful|bad" and own.feedback == {"bad", "awful"}
    assert Only.parse("feedback:negative").feedback is not None
    assert Only.parse("errors").feedback is None
