"""One call, one row: a framework's span and the client's span of the same HTTP call.

Spans here are real SDK spans from two tracers (two instrumentation scopes), nested or
side by side as frameworks emit them; the live versions are in tests/frameworks/.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from llmtrace_nb._read import calls
from llmtrace_nb._shape import frames

from spans import Recorder, openai_chat

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


class Calls:
    """A recorder with a framework tracer and a client tracer."""

    def __init__(self, max_spans: int = 100_000) -> None:
        self.rec = Recorder(max_spans)
        self.framework = self.rec.provider.get_tracer("pydantic-ai")
        self.client = self.rec.provider.get_tracer("opentelemetry.instrumentation.openai.v1")

    @contextmanager
    def span(self, tracer: trace.Tracer, name: str, attrs: dict[str, Any], start: int,
             end: int) -> Iterator[trace.Span]:
        s = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs, start_time=start)
        with trace.use_span(s, end_on_exit=False):
            yield s
        s.end(end_time=end)

    def framework_chat(self, model: str = "gpt-4o-mini", inp: int = 100, out: int = 20,
                       response_id: str | None = "chatcmpl-1") -> dict[str, Any]:
        attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.system": "openai",
                                 "gen_ai.request.model": model,
                                 "gen_ai.usage.input_tokens": inp,
                                 "gen_ai.usage.output_tokens": out}
        if response_id:
            attrs["gen_ai.response.id"] = response_id
        return attrs

    def pair(self, *, at: int = 0, client_attrs: dict[str, Any] | None = None,
             framework_attrs: dict[str, Any] | None = None) -> None:
        """A framework chat span enclosing the client's span of the same call."""
        client = client_attrs or openai_chat(response_model="gpt-4o-mini-2024-07-18",
                                             cached=40, streaming=True)
        with (self.span(self.framework, "chat gpt-4o-mini",
                        framework_attrs or self.framework_chat(), T0 + at, T0 + at + 100 * MS),
              self.span(self.client, "openai.chat", client, T0 + at + 5 * MS,
                        T0 + at + 90 * MS)):
            pass


def price(model: str, inp: int, out: int, cached: int = 0) -> float:
    return float(calc_price(Usage(input_tokens=inp, cache_read_tokens=cached,
                                  output_tokens=out), model_ref=model,
                            provider_id="openai").total_price)


def test_a_framework_span_and_the_client_span_are_one_call() -> None:
    c = Calls()
    c.pair()
    df = c.rec.frames.spans()
    assert len(df) == 2  # nothing hidden
    outer = df[df["name"] == "chat gpt-4o-mini"].iloc[0]
    inner = df[df["name"] == "openai.chat"].iloc[0]
    assert outer["duplicate_of"] is pd_na() and inner["duplicate_of"] == outer["span_id"]
    # the counted row takes the most complete fields of the pair
    assert outer["model"] == "gpt-4o-mini-2024-07-18"
    assert outer["cache_read_tokens"] == 40 and outer["is_streaming"]
    assert outer["input_messages"] == inner["input_messages"]
    assert outer["cost_usd"] == pytest.approx(price("gpt-4o-mini-2024-07-18", 100, 20, 40))
    # the duplicate keeps its own values
    assert inner["cost_usd"] == pytest.approx(outer["cost_usd"])
    llm = frames.llm_calls(df)
    assert len(llm) == 1 and llm.iloc[0]["span_id"] == outer["span_id"]
    summary = frames.summary(llm)
    assert list(summary.index) == ["gpt-4o-mini-2024-07-18"]
    assert summary.loc["gpt-4o-mini-2024-07-18", "calls"] == 1
    assert summary.loc["gpt-4o-mini-2024-07-18", "input_tokens"] == 100


def pd_na() -> Any:
    import pandas as pd

    return pd.NA


def test_without_response_ids_usage_model_and_time_decide() -> None:
    c = Calls()
    client = openai_chat(response_model="gpt-4o-mini-2024-07-18")
    del client["gen_ai.response.id"]
    c.pair(framework_attrs=c.framework_chat(response_id=None), client_attrs=client)
    assert len(frames.llm_calls(c.rec.frames.spans())) == 1
    # the same shapes with other token counts are two calls
    c = Calls()
    c.pair(framework_attrs=c.framework_chat(response_id=None, inp=999), client_attrs=client)
    assert len(frames.llm_calls(c.rec.frames.spans())) == 2


def test_different_response_ids_are_different_calls() -> None:
    c = Calls()
    c.pair(framework_attrs=c.framework_chat(response_id="chatcmpl-other"))
    df = c.rec.frames.spans()
    assert df["duplicate_of"].isna().all()


def test_parallel_calls_of_one_instrumentation_are_never_merged() -> None:
    """A thread pool asking the same question: siblings, same usage, overlapping."""
    c = Calls()
    attrs = openai_chat()
    del attrs["gen_ai.response.id"]
    with c.span(c.framework, "cell", {"llmtrace.kind": "cell"}, T0, T0 + 500 * MS):
        for i in range(5):
            with c.span(c.client, "openai.chat", attrs, T0 + i * MS, T0 + 100 * MS):
                pass
    assert len(frames.llm_calls(c.rec.frames.spans())) == 5


def test_siblings_from_two_instrumentations_with_one_id_are_one_call() -> None:
    c = Calls()
    with c.span(c.framework, "cell", {"llmtrace.kind": "cell"}, T0, T0 + 500 * MS):
        with c.span(c.framework, "chat", c.framework_chat(), T0, T0 + 100 * MS):
            pass
        with c.span(c.client, "openai.chat", openai_chat(), T0 + MS, T0 + 99 * MS):
            pass
    assert len(frames.llm_calls(c.rec.frames.spans())) == 1


def test_three_spans_of_one_call_count_once() -> None:
    c = Calls()
    third = c.rec.provider.get_tracer("logfire")
    with c.span(third, "Chat Completion with 'gpt-4o-mini'", {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.id": "chatcmpl-1"}, T0, T0 + 200 * MS):
        c.pair(at=MS)
    df = c.rec.frames.spans()
    counted = df[df["duplicate_of"].isna()]
    assert len(counted) == 1 and counted.iloc[0]["name"].startswith("Chat Completion")
    assert (df["duplicate_of"].dropna() == counted.iloc[0]["span_id"]).all()
    assert counted.iloc[0]["input_tokens"] == 100  # taken from the spans that have usage


def test_incremental_frames_mark_a_pair_split_across_two_builds() -> None:
    c = Calls()
    outer = c.framework.start_span("chat gpt-4o-mini", attributes=c.framework_chat(),
                                   start_time=T0)
    client = openai_chat(response_model="gpt-4o-mini-2024-07-18", cached=40)
    with (trace.use_span(outer, end_on_exit=False),
          c.span(c.client, "openai.chat", client, T0 + MS, T0 + 9 * MS)):
        pass
    first = c.rec.frames.spans()
    assert len(first) == 1 and first["duplicate_of"].isna().all()
    first_copy = first.copy(deep=True)
    outer.end(end_time=T0 + 10 * MS)
    second = c.rec.frames.spans()
    assert c.rec.frames.last_converted == 1
    assert second["duplicate_of"].notna().sum() == 1
    assert len(frames.llm_calls(second)) == 1
    # a frame handed out before does not change
    assert first.equals(first_copy)


def test_repricing_keeps_the_merged_fields() -> None:
    c = Calls()
    c.pair()
    before = frames.llm_calls(c.rec.frames.spans())
    c.rec.prices.set_price("gpt-4o-mini-2024-07-18", 1.0, 2.0, 0.5)
    after = frames.llm_calls(c.rec.frames.spans())
    assert len(before) == len(after) == 1
    assert after.iloc[0]["cost_usd"] == pytest.approx((60 * 1.0 + 40 * 0.5 + 20 * 2.0) / 1e6)


def test_eviction_of_one_member_breaks_nothing() -> None:
    c = Calls(max_spans=3)
    for i in range(5):
        c.pair(at=i * 200 * MS, framework_attrs=c.framework_chat(response_id=f"id-{i}"),
               client_attrs={**openai_chat(), "gen_ai.response.id": f"id-{i}"})
        df = c.rec.frames.spans()
        assert len(df) <= 3
    llm = frames.llm_calls(df)
    assert 1 <= len(llm) <= 2


def test_model_family() -> None:
    fam = calls.model_family
    assert fam("gpt-4o-mini-2024-07-18") == fam("gpt-4o-mini") == fam("openai:gpt-4o-mini")
    assert fam("gpt-4o") != fam("gpt-4o-mini")
    assert fam("claude-3-5-haiku-20241022") == fam("claude-3-5-haiku-latest")
    assert fam(None) is None and fam("") is None


def test_merged_takes_the_most_complete_fields() -> None:
    rows = [
        {"request_model": "gpt-4o-mini", "response_model": None, "input_tokens": 100,
         "output_tokens": 20, "cache_read_tokens": None, "is_streaming": None,
         "ttft_ms": math.nan, "input_messages": None, "given_cost": None},
        {"request_model": "gpt-4o-mini", "response_model": "gpt-4o-mini-2024-07-18",
         "input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 40,
         "is_streaming": True, "ttft_ms": 12.5, "input_messages": [{"role": "user"}],
         "given_cost": None},
    ]
    m = calls.merged(rows[0], rows[::-1])
    assert m["model"] == "gpt-4o-mini-2024-07-18" and m["cache_read_tokens"] == 40
    assert m["is_streaming"] is True and m["ttft_ms"] == 12.5
    assert m["input_messages"] == [{"role": "user"}]


def test_live_totals_count_a_call_once() -> None:
    """The live line counts the cell from the frame builder, as its view will."""
    from llmtrace_nb._capture.collector import CellRef
    from llmtrace_nb.views.live import live_text

    c = Calls()
    ref = CellRef(number=1, name="cell")
    c.rec.collector.active_cell = ref
    c.pair()
    c.pair(at=200 * MS, framework_attrs=c.framework_chat(response_id="chatcmpl-2"),
           client_attrs={**openai_chat(), "gen_ai.response.id": "chatcmpl-2"})
    c.rec.collector.active_cell = None
    totals = c.rec.frames.cell_totals(ref.seq)
    assert totals["llm_calls"] == 2 and totals["tokens"] == 240
    df = frames.llm_calls(c.rec.frames.spans())
    assert totals["cost_usd"] == pytest.approx(df["cost_usd"].sum())
    assert "2 LLM calls · 240 tokens" in live_text("cell", totals, 1.0)


def test_forwarding_cost_rule_counts_a_call_once() -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmtrace_nb._ship.policy import Only, PolicyExporter

    c = Calls()
    with c.span(c.framework, "cell", {"llmtrace.kind": "cell"}, T0, T0 + 500 * MS) as root:
        c.pair()
    ctx = root.get_span_context()
    spans = [s for s, _ in c.rec.collector.snapshot().spans()]
    one_call = price("gpt-4o-mini-2024-07-18", 100, 20, 40)
    for limit, kept in ((one_call * 1.5, 0), (one_call * 0.5, 3)):
        inner = InMemorySpanExporter()
        policy = PolicyExporter(inner, only=Only(cost_usd=limit),
                                cell_roots=lambda: {ctx.trace_id: ctx.span_id})
        assert policy.export(spans) is SpanExportResult.SUCCESS
        # not judged twice the cost: under 1.5x one call, the trace is left out
        assert len(inner.get_finished_spans()) == kept


def oi_llm(model: str = "gpt-4o-mini", inp: int | None = 100, out: int | None = 20
           ) -> dict[str, Any]:
    """OpenInference's LangChain LLM span (no response id on the span)."""
    attrs: dict[str, Any] = {"openinference.span.kind": "LLM", "llm.model_name": model}
    if inp is not None:
        attrs.update({"llm.token_count.prompt": inp, "llm.token_count.completion": out})
    return attrs


def langchain_cell(c: Calls, n: int, *, at: int = 0, inp: int | None = 100,
                   client_usage: bool = True) -> None:
    """OpenInference never makes its span current: the client's span of the same call
    hangs under the cell, beside the chain that holds the framework's LLM span."""
    oi = c.rec.provider.get_tracer("openinference.instrumentation.langchain")
    client = openai_chat()
    del client["gen_ai.response.id"]
    if not client_usage:
        for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                    "gen_ai.usage.total_tokens", "gen_ai.usage.cache_read.input_tokens"):
            del client[key]
    with c.span(c.framework, "cell", {"llmtrace.kind": "cell"}, T0, T0 + 10_000 * MS):
        chain = oi.start_span("RunnableSequence", attributes={
            "openinference.span.kind": "CHAIN"}, start_time=T0 + at)
        llm = []
        for i in range(n):
            with trace.use_span(chain, end_on_exit=False):
                llm.append(oi.start_span("ChatOpenAI", attributes=oi_llm(inp=inp),
                                         start_time=T0 + at + i * MS))
        for i in range(n):  # the client spans: children of the cell, not of ChatOpenAI
            with c.span(c.client, "openai.chat", client, T0 + at + (i + 2) * MS,
                        T0 + at + (90 + i) * MS):
                pass
        for i, span in enumerate(llm):
            span.end(end_time=T0 + at + (100 + i) * MS)
        chain.end(end_time=T0 + at + 200 * MS)


def test_a_call_whose_spans_are_not_nested_is_matched_by_time() -> None:
    c = Calls()
    langchain_cell(c, 1)
    df = c.rec.frames.spans()
    llm = frames.llm_calls(df)
    assert len(llm) == 1 and llm.iloc[0]["name"] == "ChatOpenAI"
    assert llm.iloc[0]["is_streaming"] is not pd_na() and llm.iloc[0]["cache_read_tokens"] == 0


def test_concurrent_calls_pair_one_to_one() -> None:
    """A LangChain batch of three alike calls: three calls, not one and not six."""
    c = Calls()
    langchain_cell(c, 3)
    assert len(frames.llm_calls(c.rec.frames.spans())) == 3
    c = Calls()
    langchain_cell(c, 3, inp=None, client_usage=False)  # streamed: no usage anywhere
    assert len(frames.llm_calls(c.rec.frames.spans())) == 3


def test_calls_apart_in_time_are_not_matched() -> None:
    c = Calls()
    with c.span(c.framework, "cell", {"llmtrace.kind": "cell"}, T0, T0 + 500 * MS):
        with c.span(c.framework, "chat", c.framework_chat(response_id=None), T0,
                    T0 + 100 * MS):
            pass
        attrs = openai_chat()
        del attrs["gen_ai.response.id"]
        with c.span(c.client, "openai.chat", attrs, T0 + 200 * MS, T0 + 300 * MS):
            pass
    assert len(frames.llm_calls(c.rec.frames.spans())) == 2


def test_logfire_request_and_stream_log_join_the_client_span() -> None:
    """logfire under the client's span: a request span without usage, then a zero-length
    log span with the response's usage, both of one scope."""
    c = Calls()
    logfire = c.rec.provider.get_tracer("logfire.openai")
    with c.span(c.client, "openai.chat", openai_chat(streaming=True), T0, T0 + 100 * MS):
        with c.span(logfire, "Chat Completion with 'gpt-4o-mini'", {
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini"},
                T0 + MS, T0 + 5 * MS):
            pass
        with c.span(logfire, "streaming response from 'gpt-4o-mini'", {
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
                "logfire.span_type": "log"}, T0 + 99 * MS, T0 + 99 * MS):
            pass
    df = c.rec.frames.spans()
    assert len(frames.llm_calls(df)) == 1
    assert df["duplicate_of"].notna().sum() == 2


def test_token_counts_come_from_the_innermost_span() -> None:
    """The Anthropic instrumentor's streamed output count is one too many; the SDK's own
    span, inside it, reads the answer's usage."""
    c = Calls()
    sdk = c.rec.provider.get_tracer("com.anthropic.sdk.python")
    inst = c.rec.provider.get_tracer("opentelemetry.instrumentation.anthropic")
    base = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-3-5-haiku-latest",
            "gen_ai.response.model": "claude-3-5-haiku-20241022",
            "gen_ai.response.id": "msg_1", "gen_ai.usage.input_tokens": 22}
    with c.span(c.framework, "cell", {"llmtrace.kind": "cell"}, T0, T0 + 500 * MS):
        with c.span(inst, "anthropic.chat", {**base, "gen_ai.usage.output_tokens": 7,
                                             "gen_ai.usage.cache_creation.input_tokens": 5},
                    T0, T0 + 100 * MS):
            pass
        with c.span(sdk, "anthropic.messages.create", {
                **base, "gen_ai.usage.output_tokens": 6, "gen_ai.request.stream": True,
                "gen_ai.usage.cache_write.input_tokens": 5,
                "gen_ai.usage.cache_read.input_tokens": 11,
                "gen_ai.response.time_to_first_chunk": 0.02}, T0 + MS, T0 + 99 * MS):
            pass
    llm = frames.llm_calls(c.rec.frames.spans())
    assert len(llm) == 1
    row = llm.iloc[0]
    assert (row["output_tokens"], row["cache_write_tokens"], row["cache_read_tokens"]) == (
        6, 5, 11)
    assert row["is_streaming"] and row["ttft_ms"] == pytest.approx(20.0)
    expected = float(calc_price(Usage(input_tokens=22, cache_read_tokens=11,
                                      cache_write_tokens=5, output_tokens=6),
                                model_ref="claude-3-5-haiku-20241022",
                                provider_id="anthropic").total_price)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)


def test_charts_and_the_explorer_count_a_call_once() -> None:
    from llmtrace_nb.views import charts, widgets

    c = Calls()
    c.pair()
    df = c.rec.frames.spans()
    assert len(charts.llm_rows(df)) == 1
    fig = charts.cost_by(df)
    assert sum(fig.data[0].y) == pytest.approx(frames.llm_calls(df)["cost_usd"].sum())
    inner = df[df["name"] == "openai.chat"].iloc[0].to_dict()
    assert widgets._key_number(inner) == "same call"


def _span(i: int, *, parent: str, scope: str, response_id: str | None = None
          ) -> calls.CallSpan:
    return calls.CallSpan(
        key=i, span_id=f"{scope}{i}", parent_id=parent, place="cell", scope=scope,
        response_id=response_id, family="gpt-4o-mini", input_tokens=10, output_tokens=2,
        start=10 * i, end=10 * i + 5)


def test_a_places_state_is_bounded_and_pairs_still_match() -> None:
    """A 5,000-call cell keeps the matcher's state of its latest calls only, and a
    framework span still joins the client span of its call."""
    matcher = calls.SameCalls()
    n = 3 * calls.KEEP_CALLS
    for i in range(n):
        inner = _span(i, parent=f"outer{i}", scope="client", response_id=f"r{i}")
        outer = _span(i, parent="root", scope="framework", response_id=None)
        matcher.add([inner])
        changed = matcher.add([outer])
        assert inner.group is outer.group and outer.group in changed, i
    place = matcher._places["cell"]
    assert len(place.recent) == len(place.calls) == calls.KEEP_CALLS
    assert len(place.by_response) <= calls.KEEP_CALLS
    assert len(place.parents) == len(place.linked) == calls.KEEP_LINKS
    assert sum(map(len, place.children.values())) == calls.KEEP_LINKS
    # a partner older than the window is let go: its late span stays a call of its own
    late = _span(0, parent="root", scope="late", response_id="r0")
    assert not matcher.add([late]) and late.group is not None and late.group.members == [late]
