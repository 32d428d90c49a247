"""Plotly figures: the right traces with the right values, empty data, inert text."""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._capture.collector import CellRef
from llmtrace_nb._shape import frames
from llmtrace_nb.views import TraceView
from llmtrace_nb.views.charts import (
    ERROR_COLOR,
    KIND_COLORS,
    MAX_LABELED_ROWS,
    cost_by,
    latency,
    lighten,
    timeline,
    tokens_vs_latency,
    waterfall,
)

from docs import XSS_PAYLOADS, agent_doc, big_doc, empty_doc, xss_doc
from spans import Recorder, openai_chat

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
WAIT = "before first token"

#: (model, input tokens, output tokens, duration ms, ttft ms, error)
CALLS = [
    ("gpt-4o-mini", 100, 20, 300, None, None),
    ("gpt-4o-mini", 1000, 200, 900, 120, None),
    ("gpt-4o-mini", 2000, 400, 1500, 300, None),
    ("gpt-4o", 500, 50, 1200, None, None),
    ("gpt-4o", 50, 0, 100, None, "RateLimitError"),
    ("house-model-7b", 10, 5, 200, None, None),
    ("house-model-7b", 30, 5, 250, 40, None),
]


def record_calls(rec: Recorder, calls: list[tuple[Any, ...]] = CALLS,
                 cell: CellRef | None = None, t: int = T0) -> int:
    for i, (model, inp, out, ms, ttft, error) in enumerate(calls):
        events = [("gen_ai.content.completion.chunk", ttft * MS)] if ttft else []
        rec.span(f"chat {model} #{i}", openai_chat(model, inp=inp, out=out,
                                                  streaming=ttft is not None),
                 events=events, start=t, duration_ns=ms * MS, error=error, cell=cell)
        t += (ms + 50) * MS
    return t


def calls_frame() -> pd.DataFrame:
    rec = Recorder()
    record_calls(rec)
    return frames.llm_calls(rec.frames.spans())


# Plotly renders a subset of HTML in labels; ours use only these tags.
_ALLOWED_TAG = re.compile(r"</?b>|<br>|</?extra>")


def assert_inert(text: Any) -> None:
    """No markup in a plotly label but the few tags we write ourselves."""
    rest = _ALLOWED_TAG.sub("", str(text))
    assert "<" not in rest and ">" not in rest, text


def figure_texts(fig: go.Figure) -> list[str]:
    """Every string plotly would render as HTML-ish text."""
    texts: list[str] = [str(fig.layout.title.text or "")]
    texts += [str(a.text) for a in fig.layout.annotations]
    for axis in ("xaxis", "yaxis"):
        ax = fig.layout[axis]
        texts += [str(t) for t in (ax.ticktext or ())]
        texts += [str(t) for t in (ax.categoryarray or ())]
    for trace in fig.data:
        texts.append(str(trace.name or ""))
        for key in ("hovertext", "text", "x", "y"):
            value = getattr(trace, key, None)
            if isinstance(value, str):
                texts.append(value)
            elif value is not None:
                texts += [v for v in value if isinstance(v, str)]
    return texts


def main_bars(fig: go.Figure) -> dict[int, tuple[go.Bar, int]]:
    """Span index → (its bar's trace, position in the trace), excluding the wait overlay."""
    bars: dict[int, tuple[go.Bar, int]] = {}
    for trace in fig.data:
        if trace.name == WAIT:
            continue
        for pos, index in enumerate(trace.customdata):
            assert index not in bars, f"span {index} has two bars"
            bars[index] = (trace, pos)
    return bars


# -- waterfall ----------------------------------------------------------------------------


def test_waterfall_one_bar_per_span_at_its_offsets() -> None:
    doc = agent_doc()
    fig = waterfall(doc)
    bars = main_bars(fig)
    assert sorted(bars) == list(range(len(doc["spans"]))) == list(range(7))
    for i, span in enumerate(doc["spans"]):
        trace, pos = bars[i]
        assert trace.y[pos] == i  # row i, in the document's tree order
        assert trace.base[pos] == span["start_ms"]
        assert trace.x[pos] == span["duration_ms"]
    # the agent step: starts at 45 ms, lasts 2,105 ms
    trace, pos = bars[2]
    assert (trace.base[pos], trace.x[pos]) == (45.0, 2105.0)
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.barmode == "overlay"
    assert fig.layout.xaxis.range[1] == pytest.approx(4820 * 1.02)


def test_waterfall_colors_by_kind_errors_red_and_streaming_wait_lighter() -> None:
    doc = agent_doc()
    fig = waterfall(doc)
    bars = main_bars(fig)
    by_kind = {trace.name: trace.marker.color for trace in fig.data}
    assert by_kind["llm"] == KIND_COLORS["llm"] and by_kind["tool"] == KIND_COLORS["tool"]
    assert by_kind["cell"] == KIND_COLORS["cell"]
    error_index = next(i for i, s in enumerate(doc["spans"]) if s.get("status") == "error")
    trace, _ = bars[error_index]
    assert trace.name == "error" and trace.marker.color == ERROR_COLOR
    assert list(trace.customdata) == [error_index]
    # the streamed call (index 3): first token after 310 ms, drawn lighter over its bar
    wait = next(t for t in fig.data if t.name == WAIT)
    assert list(wait.customdata) == [3]
    assert (wait.base[0], wait.x[0]) == (50.0, 310.0)
    assert wait.marker.color[0] == lighten(KIND_COLORS["llm"]) != KIND_COLORS["llm"]


def test_waterfall_labels_indent_by_depth_and_hover_has_the_numbers() -> None:
    doc = agent_doc()
    fig = waterfall(doc)
    ticks = fig.layout.yaxis.ticktext
    assert list(fig.layout.yaxis.tickvals) == list(range(7))
    assert ticks[0].startswith("rag-eval")
    assert ticks[1].startswith("\u00a0" * 2 + "retrieve")
    assert ticks[3].startswith("\u00a0" * 4 + "chat gpt-4o-mini")
    assert ticks[6].startswith("\u00a0" * 2 + "chat house-model · house-model-7b")
    assert len({len(t) for t in ticks}) == 1  # padded to one width: reads left-aligned
    trace, pos = main_bars(fig)[3]
    hover = trace.hovertext[pos]
    for part in ("<b>chat gpt-4o-mini</b>", "llm · 1.42 s", "model: gpt-4o-mini (openai)",
                 "1,384 tokens (1,204 in · 180 out · 1,024 cached)", "cost: $0.0002118",
                 "first token after 310 ms"):
        assert part in hover
    trace, pos = main_bars(fig)[6]
    assert "cost: no price" in trace.hovertext[pos]
    trace, pos = main_bars(fig)[5]
    assert "error: RateLimitError" in trace.hovertext[pos]
    assert fig.layout.title.text.startswith("rag-eval · 4.82 s · 3 LLM calls")


def test_waterfall_takes_a_trace_view() -> None:
    doc = agent_doc()
    assert waterfall(TraceView(doc)).to_plotly_json() == waterfall(doc).to_plotly_json()
    assert TraceView(doc).figure().to_plotly_json() == waterfall(doc).to_plotly_json()


def test_waterfall_escapes_every_label() -> None:
    doc = xss_doc()
    fig = waterfall(doc)
    texts = figure_texts(fig)
    for text in texts:
        assert_inert(text)
    hovers = " ".join(h for t in fig.data for h in t.hovertext)
    names = [s["name"] for s in doc["spans"]]
    assert set(names) <= set(XSS_PAYLOADS)
    for name in names:  # the payload is there, as text
        assert html.escape(" ".join(name.split()), quote=False) in hovers  # plotly: no &quot;
    assert "&lt;script&gt;" in fig.layout.title.text


def test_waterfall_empty_and_large() -> None:
    fig = waterfall(empty_doc())
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations] == ["no spans in this trace"]
    big = big_doc(400)
    fig = waterfall(big)
    assert len(main_bars(fig)) == len(big["spans"]) == 400
    assert len(big["spans"]) > MAX_LABELED_ROWS and fig.layout.yaxis.showticklabels is False
    with pytest.raises(TypeError):
        waterfall(42)


# -- DataFrame charts ---------------------------------------------------------------------


def test_cost_by_sums_equal_the_dataframe_and_unpriced_says_no_price() -> None:
    calls = calls_frame()
    fig = cost_by(calls)
    expected = calls.groupby("model")["cost_usd"].sum(min_count=1)
    bars = next(t for t in fig.data if t.type == "bar")
    assert list(bars.x) == ["gpt-4o", "gpt-4o-mini"]  # most expensive first
    assert list(bars.y) == pytest.approx([expected["gpt-4o"], expected["gpt-4o-mini"]])
    assert expected["gpt-4o"] > 0 and expected["gpt-4o-mini"] > 0
    no_price = next(t for t in fig.data if t.name == "no price")
    assert list(no_price.x) == ["house-model-7b"] and list(no_price.text) == ["no price"]
    assert "house-model-7b" not in bars.x  # not drawn as a $0 bar
    assert "2 calls without a price" in no_price.hovertext[0]


def test_cost_by_other_groupings() -> None:
    rec = Recorder()
    record_calls(rec)
    spans = rec.frames.spans()
    rec.span("a tool", {"llmtrace.kind": "tool"})
    fig = cost_by(rec.frames.spans(), by="kind")  # non-LLM spans have no cost: left out
    bars = fig.data[0]
    assert list(bars.x) == ["llm"] and len(fig.data) == 1
    assert bars.y[0] == pytest.approx(spans["cost_usd"].sum())
    fig = cost_by(spans, by=["provider", "model"])
    assert set(fig.data[0].x) == {"openai · gpt-4o", "openai · gpt-4o-mini"}
    with pytest.raises(KeyError, match="no column"):
        cost_by(spans, by="nope")


def test_cost_by_defaults_to_the_session(shell: InteractiveShell) -> None:
    from llmtrace_nb._notebook import session

    rec_tracer = session.require().tracer
    for model, inp, out in (("gpt-4o-mini", 1000, 100), ("gpt-4o", 200, 20),
                            ("gpt-4o-mini", 10, 1)):
        rec_tracer.start_span(f"chat {model}", attributes=openai_chat(model, inp=inp, out=out)
                              ).end()
    expected = llmtrace_nb.llm_calls_df().groupby("model")["cost_usd"].sum()
    fig = cost_by()
    got = dict(zip(fig.data[0].x, fig.data[0].y, strict=True))
    assert got == pytest.approx(expected.to_dict())


def test_latency_marks_p50_and_p95_per_group() -> None:
    calls = calls_frame()
    fig = latency(calls)
    grouped = calls.groupby("model")["duration_ms"]
    p50 = [t for t in fig.data if t.name == "p50"]
    p95 = [t for t in fig.data if t.name == "p95"]
    assert len(p50) == len(p95) == 2  # duration and TTFT
    duration_p50 = next(t for t in p50 if t.xaxis == "x")
    duration_p95 = next(t for t in p95 if t.xaxis == "x")
    models = ["gpt-4o", "gpt-4o-mini", "house-model-7b"]
    assert list(duration_p50.y) == models
    assert list(duration_p50.x) == pytest.approx(grouped.quantile(0.5)[models].tolist())
    assert list(duration_p95.x) == pytest.approx(grouped.quantile(0.95)[models].tolist())
    # each marker is labeled by an annotation at its value, on its group's row
    labels = {(a.text, a.y): a.x for a in fig.layout.annotations if a.xref == "x"}
    assert labels[("p50 900 ms", "gpt-4o-mini")] == pytest.approx(900.0)
    assert labels[("p95 1.44 s", "gpt-4o-mini")] == pytest.approx(
        grouped.quantile(0.95)["gpt-4o-mini"])
    assert len(labels) == 6
    boxes = {t.name: sorted(t.x) for t in fig.data if t.type == "box" and t.xaxis == "x"}
    assert boxes["gpt-4o-mini"] == [300.0, 900.0, 1500.0]
    # TTFT beside it, for the groups whose calls streamed; rows aligned across panels
    ttft_p50 = next(t for t in p50 if t.xaxis == "x2")
    assert list(ttft_p50.y) == ["gpt-4o-mini", "house-model-7b"]
    assert list(ttft_p50.x) == pytest.approx([210.0, 40.0])
    assert {(a.text, a.y) for a in fig.layout.annotations if a.xref == "x2"} == {
        ("p50 210 ms", "gpt-4o-mini"), ("p95 291 ms", "gpt-4o-mini"),
        ("p50 40 ms", "house-model-7b"), ("p95 40 ms", "house-model-7b")}
    assert list(fig.layout.yaxis.categoryarray) == models


def test_latency_without_ttft_is_one_plot() -> None:
    calls = calls_frame()
    fig = latency(calls[calls["ttft_ms"].isna()])
    assert {t.xaxis for t in fig.data} == {None} and "xaxis2" not in fig.layout.to_plotly_json()
    p95 = next(t for t in fig.data if t.name == "p95")
    assert list(p95.y) == ["gpt-4o", "gpt-4o-mini", "house-model-7b"]
    assert p95.x[0] == pytest.approx(pd.Series([1200.0, 100.0]).quantile(0.95))


def test_tokens_vs_latency_points() -> None:
    calls = calls_frame()
    fig = tokens_vs_latency(calls)
    assert [t.name for t in fig.data] == ["gpt-4o", "gpt-4o-mini", "house-model-7b"]
    mini = fig.data[1]
    rows = calls[calls["model"] == "gpt-4o-mini"]
    assert list(mini.x) == [120, 1200, 2400]
    assert list(mini.y) == pytest.approx(rows["duration_ms"].tolist())
    assert list(mini.customdata) == rows["span_id"].tolist()
    assert "1,200 tokens (1,000 in · 200 out)" in mini.hovertext[1]
    by_kind = tokens_vs_latency(calls, color="status")
    assert sorted(t.name for t in by_kind.data) == ["error", "ok"]


def test_timeline_lanes_per_cell_and_bars_at_their_times() -> None:
    rec = Recorder()
    t = record_calls(rec, CALLS[:2], cell=CellRef(number=3, name="first"))
    record_calls(rec, CALLS[3:5], cell=CellRef(number=4, name="second"), t=t)
    rec.span("loose", {"llmtrace.kind": "tool"}, start=t + 10 * MS * 1000)
    spans = rec.frames.spans()
    fig = timeline(spans)
    assert sum(len(tr.x) for tr in fig.data) == len(spans) == 5
    assert list(fig.layout.yaxis.categoryarray) == ["[3] first", "[4] second",
                                                    "outside cells"]
    error = next(tr for tr in fig.data if tr.name == "error")
    assert error.marker.color == ERROR_COLOR and list(error.y) == ["[4] second"]
    llm = next(tr for tr in fig.data if tr.name == "llm")
    first = spans.iloc[0]
    pos = list(llm.customdata).index(first["span_id"])
    assert pd.Timestamp(llm.base[pos]) == first["start_time"].tz_convert(None)
    assert llm.x[pos] == first["duration_ms"] == 300.0
    assert fig.layout.xaxis.type == "date"


@pytest.mark.parametrize("chart", [cost_by, latency, tokens_vs_latency, timeline])
def test_empty_data_gives_a_no_data_figure(chart: Any) -> None:
    empty_calls = frames.llm_calls(Recorder().frames.spans())
    for df in (empty_calls, pd.DataFrame()):
        fig = chart(df)
        assert isinstance(fig, go.Figure) and len(fig.data) == 0
        assert [a.text for a in fig.layout.annotations] == ["no data"]
        fig.to_json()  # a valid, serializable figure


def test_no_session_gives_a_hint_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmtrace_nb import _current

    monkeypatch.setattr(_current, "current", lambda: None)
    for chart in (cost_by, latency, tokens_vs_latency, timeline):
        fig = chart()
        assert "run %load_ext llmtrace_nb first" in fig.layout.annotations[0].text


def test_dataframe_charts_escape_models_and_names() -> None:
    rec = Recorder()
    calls = [(payload, 100 + i, 10, 200 + i, 50, None) for i, payload in
             enumerate(XSS_PAYLOADS)]
    record_calls(rec, calls, cell=CellRef(number=1, name=XSS_PAYLOADS[0]))
    spans = rec.frames.spans()
    for fig in (cost_by(spans), latency(spans), tokens_vs_latency(spans), timeline(spans),
                cost_by(spans, by="name")):
        texts = figure_texts(fig)
        for text in texts:
            assert_inert(text)
        joined = " ".join(texts)
        assert html.escape(XSS_PAYLOADS[1], quote=False) in joined  # as text (quotes as is)
