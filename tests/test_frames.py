"""Normalization (current GenAI conventions) and the DataFrames' shape, dtypes, increments."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from genai_prices import Usage, calc_price

from llmtrace_nb._capture.collector import CellRef
from llmtrace_nb._shape import frames

from spans import Recorder, openai_chat

CONTRACT_DTYPES = {
    "trace_id": "string", "span_id": "string", "parent_span_id": "string", "name": "string",
    "kind": "category", "status": "category", "error_type": "string",
    "start_time": "datetime64[ns, UTC]", "end_time": "datetime64[ns, UTC]",
    "duration_ms": "float64", "cell": "Int64", "cell_name": "string", "provider": "string",
    "request_model": "string", "response_model": "string", "model": "string",
    "input_tokens": "Int64", "output_tokens": "Int64", "total_tokens": "Int64",
    "cache_read_tokens": "Int64", "cache_write_tokens": "Int64", "reasoning_tokens": "Int64",
    "duplicate_of": "string", "cost_usd": "float64",
    "ttft_ms": "float64", "is_streaming": "boolean", "finish_reasons": "string",
    "input_messages": "object", "output_messages": "object", "attributes": "object",
}


def test_columns_and_dtypes_match_the_contract() -> None:
    rec = Recorder()
    rec.span("openai.chat", openai_chat())
    df = rec.frames.spans()
    assert list(df.columns) == list(CONTRACT_DTYPES)
    assert {c: str(t) for c, t in df.dtypes.items()} == CONTRACT_DTYPES
    assert list(df["kind"].cat.categories) == [
        "llm", "embedding", "tool", "retrieval", "agent", "chain", "cell", "other"]
    assert list(df["status"].cat.categories) == ["ok", "error", "unset"]


def test_empty_frame_has_the_contract_dtypes() -> None:
    df = Recorder().frames.spans()
    assert len(df) == 0
    assert {c: str(t) for c, t in df.dtypes.items()} == CONTRACT_DTYPES


def test_current_genai_conventions_are_normalized() -> None:
    rec = Recorder()
    cell = CellRef(number=4, name="rag")
    rec.span("openai.chat", openai_chat("o3-mini", inp=1200, out=300, cached=1024,
                                        reasoning=128), cell=cell, duration_ns=1_420_000_000)
    row = rec.frames.spans().iloc[0]
    assert row["kind"] == "llm" and row["status"] == "ok"  # finished, not failed
    assert row["attributes"]["otel.status_code"] == "UNSET"  # as the span said
    assert row["provider"] == "openai" and row["model"] == "o3-mini"
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (1200, 300, 1500)
    assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (1024, 128)
    assert row["finish_reasons"] == "stop"
    assert rec.frames.spans()["is_streaming"].tolist() == [False]
    assert row["duration_ms"] == pytest.approx(1420.0)
    assert (row["cell"], row["cell_name"]) == (4, "rag")
    assert len(row["trace_id"]) == 32 and len(row["span_id"]) == 16
    assert pd.isna(row["parent_span_id"])
    assert row["input_messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert row["output_messages"] == [
        {"role": "assistant", "content": "Paris.", "finish_reason": "stop"}]
    expected = float(calc_price(Usage(input_tokens=1200, cache_read_tokens=1024,
                                      output_tokens=300),
                                model_ref="o3-mini", provider_id="openai").total_price)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert math.isnan(row["ttft_ms"])


def test_ttft_from_first_chunk_event() -> None:
    rec = Recorder()
    chunk = "gen_ai.content.completion.chunk"
    rec.span("openai.chat", openai_chat(streaming=True),
             events=[(chunk, 310_000_000), (chunk, 400_000_000), (chunk, 450_000_000)])
    row = rec.frames.spans().iloc[0]
    assert rec.frames.spans()["is_streaming"].tolist() == [True]
    assert row["ttft_ms"] == pytest.approx(310.0)


def test_ttft_from_time_to_first_chunk_attribute_wins() -> None:
    rec = Recorder()
    attrs = openai_chat(streaming=True) | {"gen_ai.response.time_to_first_chunk": 0.125}
    rec.span("openai.chat", attrs, events=[("gen_ai.content.completion.chunk", 300_000_000)])
    assert rec.frames.spans().iloc[0]["ttft_ms"] == pytest.approx(125.0)


def test_tool_calls_in_messages() -> None:
    rec = Recorder()
    attrs = openai_chat()
    attrs["gen_ai.output.messages"] = json.dumps([{
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                   "arguments": {"city": "Paris"}}],
        "finish_reason": "tool_call",
    }])
    attrs["gen_ai.input.messages"] = json.dumps([
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_0",
                                    "response": "sunny"}]},
    ])
    rec.span("openai.chat", attrs)
    row = rec.frames.spans().iloc[0]
    assert row["output_messages"][0]["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert row["input_messages"][1] == {"role": "tool", "content": "sunny",
                                        "tool_call_id": "call_0"}


def test_unknown_model_cost_is_nan_never_zero_and_named() -> None:
    rec = Recorder()
    rec.span("openai.chat", openai_chat("house-model-7b"))
    rec.span("openai.chat", openai_chat("gpt-4o-mini"))
    df = rec.frames.spans()
    assert math.isnan(df.loc[0, "cost_usd"]) and df.loc[1, "cost_usd"] > 0
    assert df.attrs["unpriced_models"] == ["house-model-7b"]
    summary = frames.summary(frames.llm_calls(df))
    assert math.isnan(summary.loc["house-model-7b", "cost_usd"])
    assert summary.attrs["unpriced_models"] == ["house-model-7b"]
    rec.prices.set_price("house-model-7b", 1.0, 2.0)
    df = rec.frames.spans()
    assert df.loc[0, "cost_usd"] == pytest.approx((100 * 1.0 + 20 * 2.0) / 1e6)
    assert df.attrs["unpriced_models"] == []


def test_errors_and_non_llm_spans() -> None:
    rec = Recorder()
    rec.span("openai.chat", openai_chat(), error="RateLimitError")
    rec.span("my step", {"foo": "bar"})
    df = rec.frames.spans()
    assert df.loc[0, "status"] == "error" and df.loc[0, "error_type"] == "RateLimitError"
    assert df.loc[1, "kind"] == "other" and math.isnan(df.loc[1, "cost_usd"])
    assert df.loc[1, "attributes"] == {"foo": "bar"}


def test_incremental_conversion_converts_only_new_spans() -> None:
    rec = Recorder()
    for _ in range(50):
        rec.span("openai.chat", openai_chat())
    assert len(rec.frames.spans()) == 50 and rec.frames.last_converted == 50
    for _ in range(7):
        rec.span("openai.chat", openai_chat("gpt-4o"))
    df = rec.frames.spans()
    assert len(df) == 57 and rec.frames.last_converted == 7
    assert list(df["model"].iloc[-7:]) == ["gpt-4o"] * 7
    assert len(rec.frames.spans()) == 57 and rec.frames.last_converted == 0


def test_incremental_frame_follows_eviction_and_clear() -> None:
    rec = Recorder(max_spans=10)
    for i in range(8):
        rec.span(f"s{i}", {})
    assert len(rec.frames.spans()) == 8
    for i in range(8, 15):
        rec.span(f"s{i}", {})
    df = rec.frames.spans()
    assert list(df["name"]) == [f"s{i}" for i in range(5, 15)]
    assert rec.frames.last_converted == 7 and df.attrs["dropped_spans"] == 5
    rec.collector.clear()
    assert len(rec.frames.spans()) == 0
    rec.span("after", {})
    assert list(rec.frames.spans()["name"]) == ["after"]


def test_secrets_in_headers_are_scrubbed() -> None:
    rec = Recorder()
    attrs = openai_chat()
    attrs["gen_ai.headers"] = "{'Authorization': 'Bearer sk-proj-abcdefghijklmnop1234567890'}"
    attrs["gen_ai.input.messages"] = json.dumps([
        {"role": "user", "parts": [{"type": "text",
                                    "content": "my key is sk-abcdefghijklmnopqrstuvwx ok"}]}])
    rec.span("openai.chat", attrs)
    row = rec.frames.spans().iloc[0]
    dumped = json.dumps([row["attributes"], row["input_messages"]], default=str)
    assert "sk-proj-abc" not in dumped and "sk-abcdef" not in dumped
    assert "[REDACTED]" in row["attributes"]["gen_ai.headers"]
    assert row["input_messages"][0]["content"] == "my key is [REDACTED] ok"


def test_content_off_hides_messages() -> None:
    rec = Recorder()
    rec.span("openai.chat", openai_chat())
    df = rec.frames.spans(capture_content=False)
    assert df.loc[0, "input_messages"] is None and df.loc[0, "output_messages"] is None
    assert "gen_ai.input.messages" not in df.loc[0, "attributes"]
    assert df.loc[0, "input_tokens"] == 100


def test_summary_groups_and_percentiles() -> None:
    rec = Recorder()
    for i, ms in enumerate([100, 200, 300, 400, 1000]):
        rec.span("openai.chat", openai_chat("gpt-4o-mini", out=50), duration_ns=ms * 1_000_000,
                 error="APIError" if i == 0 else None)
    rec.span("openai.chat", openai_chat("gpt-4o"), duration_ns=50_000_000)
    calls = frames.llm_calls(rec.frames.spans())
    s = frames.summary(calls)
    assert list(s.columns) == list(frames.SUMMARY_COLUMNS)
    mini = s.loc["gpt-4o-mini"]
    assert (mini["calls"], mini["errors"], mini["input_tokens"], mini["output_tokens"]) == (
        5, 1, 500, 250)
    assert mini["latency_p50_ms"] == pytest.approx(300.0)
    assert mini["latency_p95_ms"] == pytest.approx(
        pd.Series([100, 200, 300, 400, 1000]).quantile(0.95))
    assert mini["tokens_per_s"] == pytest.approx(250 / 2.0)
    assert mini["cost_usd"] == pytest.approx(calls.loc[calls["model"] == "gpt-4o-mini",
                                                       "cost_usd"].sum())
    by_two = frames.summary(calls, by=["provider", "model"])
    assert by_two.index.names == ["provider", "model"] and len(by_two) == 2
    with pytest.raises(KeyError, match="no column"):
        frames.summary(calls, by="nope")


def test_columns_of_one_shape_keep_row_values() -> None:
    """Spans of one key set: equal message lists stay one list per row, and a count
    column with one unreadable value keeps the others (the columnar fast paths)."""
    rec = Recorder()
    messages = [{"role": "user", "parts": [{"type": "text", "content": "hi"}]},
                {"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}]
    for tokens in (5, "-3", 7):
        rec.span("openai.chat", {"gen_ai.operation.name": "chat",
                                 "gen_ai.request.model": "gpt-4o",
                                 "gen_ai.usage.input_tokens": tokens,
                                 "gen_ai.input.messages": json.dumps(messages)})
    df = rec.frames.spans()
    assert df["input_tokens"].tolist() == [5, pd.NA, 7]
    assert df["output_tokens"].isna().all() and str(df["output_tokens"].dtype) == "Int64"
    assert [len(m) for m in df["input_messages"]] == [2, 2, 2]
    assert df["input_messages"][0][1]["role"] == "assistant"
    # input tokens alone are priced; a call with no readable count is not
    assert df["cost_usd"].notna().tolist() == [True, False, True]


def test_ids_a_cell_shares_are_one_string() -> None:
    """A cell's spans share its trace id and mostly its root as parent: the frame holds
    one string for a run of one id (memory per call), and the same text as ever."""
    ids = [7, 7, 7, None, None, 2**120, 7, 0]
    shared = frames._shared_hex_column(ids, 16)
    assert list(shared) == list(frames._hex_column(ids, 16))
    assert shared[0] == "00000000000000000000000000000007" and shared[3] is None
    assert shared[0] is shared[1] is shared[2]
    assert shared[6] is not shared[0]  # only neighbours are looked at: no lookup table


def test_a_cells_rows_share_their_trace_and_parent_ids() -> None:
    rec = Recorder()
    with rec.tracer.start_as_current_span("cell"):
        for i in range(3):
            rec.span("openai.chat", {**openai_chat(), "gen_ai.response.id": f"r{i}"})
    calls = rec.frames.spans().iloc[:3]
    assert calls["trace_id"].nunique() == 1 and calls["parent_span_id"].nunique() == 1
    for column in ("trace_id", "parent_span_id"):
        first, *rest = calls[column].tolist()
        assert all(value is first for value in rest), column
