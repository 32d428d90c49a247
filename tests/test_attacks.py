"""Hardening, round two: leaks, stalls and poison found by attacking it.

Each test reproduces one finding (it failed before the fix). Forwarding faults are in
tests/test_forward*.py and hostile files in tests/test_files*.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

import llmtrace_nb
from llmtrace_nb._read import scrub
from llmtrace_nb._ship import files
from llmtrace_nb._ship.policy import clean_span

from conftest import run
from spans import Recorder

SECRET = "sk-proj-" + "A1b2C3d4" * 5


# -- 1. redaction lets text out under keys it does not know ----------------------------------

MARKERS = {
    "llm.prompts": ("MARKER-prompts-1", "MARKER-prompts-2"),  # a list, no index suffix
    "llm.choices.0.completion.text": "MARKER-choice",
    "llm.prompt_template.template": "MARKER-template {x}",
    "llm.prompt_template.variables": '{"x": "MARKER-variable"}',
    "retrieval.documents.0.document.content": "MARKER-document",
    "reranker.query": "MARKER-rerank-query",
    "reranker.input_documents.0.document.content": "MARKER-rerank-doc",
    "gen_ai.prompt": "MARKER-gen-ai-prompt",
    "gen_ai.completion": "MARKER-gen-ai-completion",
    "some.future.dialect.text": "MARKER-unknown-key",
}
EVENTS = [("gen_ai.content.prompt", {"gen_ai.prompt": "MARKER-event-prompt"}),
          ("gen_ai.content.completion", {"gen_ai.completion": "MARKER-event-completion"})]


def with_markers() -> Recorder:
    rec = Recorder()
    span = rec.tracer.start_span("chat", attributes={
        **MARKERS, "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 7, "gen_ai.response.id": "chatcmpl-1"})
    for name, attrs in EVENTS:
        span.add_event(name, attrs)
    span.end()
    return rec


@pytest.mark.parametrize("mode", ["drop", "hash"])
def test_redaction_is_an_allow_list(mode: str) -> None:
    span, _ = with_markers().collector.snapshot().spans()[0]
    text = span.to_json()
    assert text.count("MARKER") == 13
    clean = clean_span(span, mode).to_json()
    assert "MARKER" not in clean
    # what is not content still goes
    out = clean_span(span, mode)
    assert out.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert out.attributes["gen_ai.usage.input_tokens"] == 7
    assert out.attributes["gen_ai.response.id"] == "chatcmpl-1"
    if mode == "hash":
        assert out.attributes["reranker.query"].startswith("sha256:")


def test_a_file_saved_with_content_off_holds_no_text(tmp_path: Path) -> None:
    path = tmp_path / "off.jsonl"
    files.save(path, with_markers().collector.snapshot().spans(), redact="drop")
    assert "MARKER" not in path.read_text()


def test_frames_with_content_off_hold_no_text() -> None:
    df = with_markers().frames.spans(capture_content=False)
    assert "MARKER" not in repr(df.to_dict("records"))


# -- 2. every scrubber pattern is linear ----------------------------------------------------

NEEDLES = ["eyJ", "sk-", "sk-proj-", "AKIA", "AIza", "ghp_", "github_pat_", "xoxb-", "hf_",
           "Bearer ", "Basic ", "authorization: ", "api_key=", "cookie=", "http://a:",
           "http://", "x@"]
FILLERS = ["", "-", "a", ".", "aaaaaaaaaaaa.", "_", ":", " ", "@", "/"]


def adversarial(size: int) -> list[str]:
    return [(n + f) * (size // len(n + f)) for n in NEEDLES for f in FILLERS]


def best_ms(rule: scrub.Rule, text: str, runs: int = 3) -> float:
    low = text.lower()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        rule.apply(text, low)
        best = min(best, time.perf_counter() - start)
    return best * 1000


@pytest.mark.parametrize("at", range(len(scrub.RULES)))
def test_each_scrubber_rule_is_linear_on_a_megabyte(at: int) -> None:
    """The JWT pattern took 5 s on 160 KB of "eyJ-" * n: each "eyJ" was a start that
    scanned the rest of the string. Every rule's time must grow with the text, not with
    its square, on its worst adversarial input. The absolute figure (target: < 50 ms a
    megabyte) is recorded by `make bench` (case "scrub"), not asserted here: a shared CI
    host makes timed tests flake; the ceiling below is one a quadratic pattern misses by
    orders of magnitude."""
    rule = scrub.RULES[at]
    worst = max(adversarial(1_000_000), key=lambda t: best_ms(rule, t, 1))
    # a quarter of the text: linear takes a quarter of the time, quadratic a sixteenth
    quarter, full = (best_ms(rule, worst[: len(worst) // d]) for d in (4, 1))
    assert full < 8.0 * max(quarter, 5.0), (rule.pattern.pattern, quarter, full)
    assert full < 500, rule.pattern.pattern


def test_the_whole_scrubber_on_a_megabyte_tool_result() -> None:
    text = "eyJ-" * 250_000
    start = time.perf_counter()
    scrub.scrub_text(text)
    assert time.perf_counter() - start < 1.0


# -- 3 / 4 / 5 / 15a. secrets in names, status, resources, URLs; GitHub's new tokens ---------

GITHUB_PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH"


@pytest.mark.parametrize("secret", [SECRET, GITHUB_PAT])
def test_secrets_in_names_reach_nothing(shell: InteractiveShell, tmp_path: Path,
                                        secret: str) -> None:
    result, out = run(shell, f"%%trace debug {secret}\nimport llmtrace_nb\n"
                             f"with llmtrace_nb.span('call with {secret}', kind='tool'): pass")
    assert result.success
    df = llmtrace_nb.spans_df()
    assert secret not in repr(df[["name", "cell_name"]].to_dict("records"))
    assert all(secret not in json.dumps(b, default=str) for b in out.bundles)
    path = tmp_path / "names.jsonl"
    llmtrace_nb.save(path)
    assert secret not in path.read_text()


def test_secrets_in_status_resource_and_links_are_scrubbed(tmp_path: Path) -> None:
    provider = TracerProvider(resource=Resource.create(
        {"deploy.token": SECRET, "db.password": "hunter2-hunter2", "service.name": "x"}))
    rec = Recorder()
    provider.add_span_processor(rec.collector)
    span = provider.get_tracer("t").start_span("failing")
    span.set_status(Status(StatusCode.ERROR, f"RuntimeError: key {SECRET} refused"))
    span.add_event("retry", {"note": f"with {SECRET}"})
    span.end()
    path = tmp_path / "status.jsonl"
    files.save(path, rec.collector.snapshot().spans())
    text = path.read_text()
    assert SECRET not in text and "hunter2" not in text
    assert "refused" in text and '"service.name"' in text


def test_basic_auth_in_a_url_is_scrubbed(shell: InteractiveShell, demo_server: Any,
                                         tmp_path: Path) -> None:
    import openai

    host = demo_server.base_url.split("://", 1)[1]
    shell.user_ns["client"] = openai.OpenAI(base_url=f"http://alice:PASSWORD123@{host}",
                                            api_key="sk-demo", max_retries=0)
    result, out = run(shell, "%%trace\nclient.chat.completions.create(model='gpt-4o-mini', "
                             "messages=[{'role': 'user', 'content': 'hi'}])")
    assert result.success
    assert "PASSWORD123" not in repr(llmtrace_nb.spans_df().to_dict("records"))
    assert all("PASSWORD123" not in json.dumps(b, default=str) for b in out.bundles)
    path = tmp_path / "url.jsonl"
    llmtrace_nb.save(path)
    assert "PASSWORD123" not in path.read_text() and "[REDACTED]@" in path.read_text()


# -- 15b. plotly labels show quotes as quotes ----------------------------------------------

def test_plotly_labels_show_quotes() -> None:
    from llmtrace_nb.views import charts

    assert charts.plotly_text('say "hi" <b>') == 'say "hi" &lt;b&gt;'


# -- 6. one bad timestamp poisons the session ------------------------------------------------

def test_a_time_past_2262_is_unknown_and_breaks_nothing(shell: InteractiveShell) -> None:
    result, _ = run(shell, "%%trace slip\nimport time\nfrom opentelemetry import trace\n"
                           "s = trace.get_tracer('t').start_span('unit slip',"
                           " start_time=time.time_ns() * 1000)\n"
                           "s.end(end_time=time.time_ns() * 1000 + 5)")
    assert result.success
    df = llmtrace_nb.spans_df()
    bad = df[df["name"] == "unit slip"].iloc[0]
    assert bad["start_time"] is pd.NaT and bad["attributes"]["llmtrace.unreadable"] == (
        "start_time,end_time")
    assert list(llmtrace_nb.cells_df()["cell_name"]) == ["slip"]
    llmtrace_nb.status()
    llmtrace_nb.view("slip")._repr_mimebundle_()
    # and later cells still get their views
    result, out = run(shell, "%%trace after\nx = 1")
    assert result.success and any("application/vnd.llmtrace.trace+json" in b
                                  for b in out.bundles)


# -- 9. a fork while another thread holds a lock ---------------------------------------------

def test_a_child_forked_while_a_lock_is_held_does_not_hang() -> None:
    """A thread (the live line, a frame build) holds the collector's lock at the fork:
    the child's copy of the lock would stay locked for ever."""
    import os
    import threading

    rec = Recorder(max_spans=10)
    for i in range(12):
        rec.span(f"s{i}", {"i": i})
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with rec.collector._lock, rec.frames._lock, rec.prices._lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: collect, trim, build a frame, price
        code = 1
        try:
            for i in range(30):
                rec.span(f"child{i}", {"i": i})
            df = rec.frames.spans()
            code = 0 if len(df) == 10 and df["name"].iloc[-1] == "child29" else 2
        finally:
            os._exit(code)
    release.set()
    thread.join()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on a lock the parent's thread held")
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent still has its own spans, untouched by the child
    assert len(rec.frames.spans()) == 10 and "child0" not in set(rec.frames.spans()["name"])


# -- 11. a cell whose spans were evicted keeps exact totals -----------------------------------

EVICTING_CELL = """%%trace many --max-cost {limit}
from opentelemetry import trace
tracer = trace.get_tracer("many")
for i in range(3000):
    with tracer.start_as_current_span("openai.chat", attributes={{
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10}}):
        pass
"""


def test_eviction_does_not_undercount_a_cell(shell: InteractiveShell) -> None:
    """max_spans=1000 and a cell of 3,000 calls showed "999 calls" and judged its budget
    on that; now its totals and budget count all 3,000, and every view says what left."""
    from genai_prices import Usage, calc_price

    one = float(calc_price(Usage(input_tokens=100, output_tokens=10),
                           model_ref="gpt-4o-mini", provider_id="openai").total_price)
    session = llmtrace_nb._notebook.session.require()
    session.collector.resize(1000)
    try:
        result, out = run(shell, EVICTING_CELL.format(limit=one * 2000))
        # the budget sees all 3,000 calls: 1,000 would be under it
        assert type(result.error_in_exec).__name__ == "BudgetExceeded"
        doc = next(b for b in out.bundles if "application/vnd.llmtrace.trace+json" in b)[
            "application/vnd.llmtrace.trace+json"]
        assert doc["totals"]["llm_calls"] == 3000
        assert doc["totals"]["cost_usd"] == pytest.approx(one * 3000, rel=1e-9)
        assert doc["evicted"]["spans"] >= 2000 and doc["evicted"]["uncounted"] == 0
        for mime in ("text/html", "text/plain"):
            text = next(b for b in out.bundles if mime in b)[mime]
            assert "left the buffer" in text and "the totals include them" in text
        cells = llmtrace_nb.cells_df()
        assert cells.iloc[-1]["llm_calls"] == 3000
        assert cells.iloc[-1]["input_tokens"] == 300_000
    finally:
        session.collector.resize(100_000)


# -- 13. any finite number renders -----------------------------------------------------------

@pytest.mark.parametrize("tiny", [1e-200, 5e-324, 0.0, -0.0, 1e300])
def test_tiny_and_huge_durations_render(tiny: float) -> None:
    from llmtrace_nb.views import html, text

    rec = Recorder()
    rec.span("blink", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                       "gen_ai.usage.input_tokens": 1}, duration_ns=0)
    from llmtrace_nb._shape import document

    doc = document.build(rec.frames.spans(), name="blink")
    for span in doc["spans"]:
        span["duration_ms"] = tiny
        span["cost_usd"] = tiny
    doc["totals"]["duration_ms"] = tiny
    doc["totals"]["cost_usd"] = tiny
    page = html.render(doc)
    assert "could not be drawn" not in page and "blink" in page
    assert len(text.format_cost(tiny)) < 30 and len(text.format_duration(tiny)) < 30
