"""Under load, faults and bad input it keeps working, loses nothing and leaks nothing."""

from __future__ import annotations

import json
import math
import resource
import threading
import time

import hypothesis.strategies as st
import openai
import pytest
from hypothesis import HealthCheck, example, given, settings
from IPython.core.interactiveshell import InteractiveShell
from opentelemetry.sdk.trace import TracerProvider

import llmtrace_nb
from llmtrace_nb import views
from llmtrace_nb._capture.collector import SpanCollector
from llmtrace_nb._notebook import session
from llmtrace_nb._read import semconv
from llmtrace_nb._shape import document

from conftest import run
from docs import XSS_PAYLOADS
from spans import Recorder, openai_chat

# -- concurrency --------------------------------------------------------------------------


def test_eight_threads_by_a_thousand_spans(shell: InteractiveShell) -> None:
    result, _ = run(shell, "%%trace threads --quiet\n"
                           "import threading, llmtrace_nb\n"
                           "def work(t):\n"
                           "    for i in range(1000):\n"
                           "        with llmtrace_nb.span(f't{t}-{i}'): pass\n"
                           "ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]\n"
                           "for t in ts: t.start()\n"
                           "for t in ts: t.join()")
    assert result.success
    df = llmtrace_nb.spans_df()
    work = df[df["kind"] != "cell"]
    assert len(work) == 8000 and work["span_id"].is_unique
    assert set(work["name"]) == {f"t{t}-{i}" for t in range(8) for i in range(1000)}
    assert (df["cell"] == result.execution_count).all()


def test_a_thousand_concurrent_async_calls(shell: InteractiveShell, demo_server: object) -> None:
    shell.user_ns["aclient"] = openai.AsyncOpenAI(
        base_url=demo_server.base_url, api_key="k", max_retries=3)  # type: ignore[attr-defined]
    result, _ = run(shell, "%%trace async load --quiet\nimport asyncio\n"
                           "rs = await asyncio.gather(*(aclient.chat.completions.create(\n"
                           "    model='gpt-4o-mini',\n"
                           "    messages=[{'role': 'user', 'content': str(i)}])\n"
                           "    for i in range(1000)))\n"
                           "len(rs)")
    assert result.success and result.result == 1000
    calls = llmtrace_nb.llm_calls_df()
    assert len(calls) == 1000 and calls["span_id"].is_unique
    assert (calls["cell"] == result.execution_count).all()
    assert calls["input_tokens"].notna().all() and (calls["cost_usd"] > 0).all()


def test_spans_ending_after_their_cell_are_kept_and_the_view_says_so(
        shell: InteractiveShell) -> None:
    result, out = run(shell, "%%trace background\nimport threading, time, llmtrace_nb\n"
                             "def late():\n"
                             "    with llmtrace_nb.span('late step', kind='tool'):\n"
                             "        time.sleep(0.4)\n"
                             "bg = threading.Thread(target=late); bg.start()")
    doc = next(b for b in out.bundles if document.MIME_TYPE in b)[document.MIME_TYPE]
    assert doc["open"] is True and doc["open_spans"] == 1
    assert "still running" in out.text
    shell.user_ns["bg"].join()
    late = llmtrace_nb.spans_df().set_index("name").loc["late step"]
    assert late["cell"] == result.execution_count and late["cell_name"] == "background"
    assert llmtrace_nb.view("background").document["open"] is False  # complete now


# -- lifecycle ----------------------------------------------------------------------------


def test_keyboard_interrupt_in_a_traced_cell(shell: InteractiveShell) -> None:
    result, _ = run(shell, "%%trace interrupted --quiet\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    root = llmtrace_nb.spans_df().iloc[0]
    assert root["status"] == "error" and root["error_type"] == "KeyboardInterrupt"
    assert session.require().collector.active_cell is None
    result, _ = run(shell, "%%trace after --quiet\n1 + 1")
    assert result.success and result.result == 2


# -- bounded memory -------------------------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_memory_stays_flat_over_a_million_spans() -> None:
    collector = SpanCollector(max_spans=10_000)
    provider = TracerProvider()
    provider.add_span_processor(collector)
    tracer = provider.get_tracer("t")
    attrs = openai_chat()

    def burst(n: int) -> None:
        for _ in range(n):
            with tracer.start_as_current_span("openai.chat", attributes=attrs):
                pass

    burst(200_000)  # the buffer is full long before this
    peak = _rss_mb()
    burst(800_000)
    assert _rss_mb() - peak < 32  # max RSS barely moves for 4x more spans
    assert len(collector) == 10_000 and collector.dropped == 990_000


def test_full_buffer_is_reported(shell: InteractiveShell) -> None:
    sess = session.require()
    sess.collector.resize(100)
    try:
        run(shell, "%%trace --quiet\nimport llmtrace_nb\n"
                   "for i in range(250):\n    with llmtrace_nb.span(f's{i}'): pass")
        df = llmtrace_nb.spans_df()
        assert len(df) == 100 and df.attrs["dropped_spans"] == 151
        _, out = run(shell, "%llmtrace status")
        assert "100 kept (buffer 100), 151 dropped" in out.text
    finally:
        sess.collector.resize(100_000)


# -- bad attributes -------------------------------------------------------------------------

KEYS = [k for keys in semconv.FIELD_KEYS.values() for k in keys] + [
    "gen_ai.input.messages", "gen_ai.output.messages", "llm.input_messages.0.message.content",
    "gen_ai.prompt.0.content", "input.value", "output.value", "openinference.span.kind",
    "gen_ai.operation.name", "llm.invocation_parameters", "gen_ai.tool.call.arguments",
    "some.unknown.dialect"]
TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["-3", "1e400", "nan", "NaN", "9" * 40, "[{\"role\":", "{\"a\": [1, 2",
                     "\udcff\ud800 lone", "[[[[[[[[[[", *XSS_PAYLOADS]),
)
VALUES = st.one_of(
    TEXT, st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True), st.lists(TEXT, max_size=3).map(tuple),
    st.lists(st.integers(-5, 5), max_size=3).map(tuple),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=12))
@example({"gen_ai.usage.input_tokens": "²"})  # a digit int() refuses
@example({"gen_ai.provider.name": "", "gen_ai.request.model": "\udcff\ud800 lone",
          "gen_ai.usage.input_tokens": 1})  # an unpriced model named with lone surrogates
def test_any_attributes_give_a_usable_row_document_and_view(attrs: dict) -> None:
    rec = Recorder()
    rec.span("fuzz", attrs)
    df = rec.frames.spans()
    assert len(df) == 1
    row = df.iloc[0]
    for col in ("input_tokens", "output_tokens", "cache_read_tokens"):
        assert row[col] is None or row[col] is __import__("pandas").NA or row[col] >= 0
    assert not (isinstance(row["cost_usd"], float) and math.isinf(row["cost_usd"]))
    doc = document.build(df, name="fuzz", cell=1)
    text = document.to_json(doc)  # JSON-safe: no NaN, valid UTF-8
    text.encode("utf-8")
    bundle = views.bundle(doc)
    assert "<script" not in bundle["text/html"].lower()


def test_huge_and_deep_values() -> None:
    rec = Recorder()
    deep = "[" * 5000 + "]" * 5000
    rec.span("big", openai_chat() | {"gen_ai.input.messages": "x" * 10_000_000,
                                     "gen_ai.output.messages": deep,
                                     "gen_ai.usage.input_tokens": "12",
                                     "gen_ai.usage.output_tokens": -5})
    start = time.perf_counter()
    row = rec.frames.spans().iloc[0]
    assert row["input_tokens"] == 12  # a count given as a string is still a count
    assert row["output_tokens"] is __import__("pandas").NA
    assert "gen_ai.usage.output_tokens" in row["attributes"]["llmtrace.unreadable"]
    assert row["input_messages"][0]["unreadable"] is True
    doc = document.build(rec.frames.spans(), name="big", cell=1)
    assert len(document.to_json(doc)) < 200_000  # 10 MB of prompt, truncated with a marker
    assert "truncated" in json.dumps(doc)
    assert time.perf_counter() - start < 10


def test_unknown_dialect_is_other_and_kept() -> None:
    rec = Recorder()
    rec.span("mystery", {"vendor.x.tokens": 5, "vendor.x.model": "m"})
    row = rec.frames.spans().iloc[0]
    assert row["kind"] == "other" and row["attributes"]["vendor.x.tokens"] == 5


# -- secrets and content ----------------------------------------------------------------------

KEYS_IN_PROMPTS = ["sk-ant-api03-" + "a" * 40, "AKIA" + "B" * 16, "ghp_" + "c" * 36,
                   "AIza" + "d" * 35, "Bearer abcdefghijklmnopqrstuvwxyz",
                   "xoxb-1234567890-abcdefghij"]


@pytest.mark.parametrize("secret", KEYS_IN_PROMPTS)
def test_keys_pasted_into_prompts_are_scrubbed_everywhere(secret: str) -> None:
    rec = Recorder()
    attrs = openai_chat()
    attrs["gen_ai.input.messages"] = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": f"use {secret} please"}]}])
    attrs["gen_ai.headers"] = str({"api-key": secret.split()[-1]})
    rec.span("openai.chat", attrs)
    df = rec.frames.spans()
    doc = document.build(df, name="c", cell=1)
    bundle = views.bundle(doc)
    frame_text = json.dumps(df.drop(columns=["start_time", "end_time"]).to_dict("records"),
                            default=str)
    token = secret.split()[-1]
    for where in (frame_text, document.to_json(doc), bundle["text/html"]):
        assert token not in where


def test_thread_of_live_line_does_not_leak(shell: InteractiveShell) -> None:
    before = {t.name for t in threading.enumerate()}
    run(shell, "%%trace --quiet\nx = 1")
    assert "llmtrace-live" not in {t.name for t in threading.enumerate()} - before
