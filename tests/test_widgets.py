"""ipywidgets views: the explorer over the session and the per-cell trace widget."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterator
from html.parser import HTMLParser

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
import pytest
from IPython.core.interactiveshell import InteractiveShell
from opentelemetry.trace import Status, StatusCode
from plotly.callbacks import Points

import llmtrace_nb
from llmtrace_nb import _current
from llmtrace_nb._notebook import session
from llmtrace_nb.views import TraceView
from llmtrace_nb.views.widgets import (
    ALL,
    NONE,
    Explorer,
    TraceWidget,
    explore,
    filter_spans,
    span_detail_html,
    trace_widget,
)

from conftest import run
from docs import XSS_PAYLOADS, agent_doc, empty_doc, xss_doc
from spans import Recorder, openai_chat

MS = 1_000_000
SAFE_TAGS = {"style", "div", "span", "pre", "table", "thead", "tbody", "tr", "td", "th",
             "details", "summary", "i", "b"}


class _Parsed(HTMLParser):
    def __init__(self, value: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.chunks: list[str] = []
        self.feed(value)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def assert_inert_html(value: str) -> _Parsed:
    """Only our own tags and class/style attributes: no script, image, link or handler."""
    parsed = _Parsed(value)
    assert set(parsed.tags) <= SAFE_TAGS, set(parsed.tags) - SAFE_TAGS
    assert {name for name, _ in parsed.attrs} <= {"class"}, parsed.attrs
    return parsed


def html_widgets(root: widgets.Widget) -> Iterator[widgets.HTML]:
    if isinstance(root, (widgets.HTML, widgets.HTMLMath)):
        yield root
    for child in getattr(root, "children", ()) or ():
        yield from html_widgets(child)


def click(figure: go.FigureWidget, trace_index: int, point: int) -> None:
    """What plotly's frontend sends when a point is clicked."""
    trace = figure.data[trace_index]
    trace._dispatch_on_click(Points(point_inds=[point], xs=[None], ys=[None],
                                    trace_name=trace.name, trace_index=trace_index), None)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def llm_call(model: str, *, inp: int, out: int, ms: float, name: str | None = None,
             ttft: float | None = None, error: str | None = None,
             user: str = "Capital of France?") -> None:
    """One finished LLM span in the live session, with the current context as parent."""
    tracer = session.require().tracer
    attrs = openai_chat(model, inp=inp, out=out, streaming=ttft is not None)
    if user != "Capital of France?":
        attrs["gen_ai.input.messages"] = (
            '[{"role": "user", "parts": [{"type": "text", "content": '
            + _json_str(user) + "}]}]")
    start = time.time_ns()
    span = tracer.start_span(name or f"chat {model}", attributes=attrs, start_time=start)
    if ttft is not None:
        span.add_event("gen_ai.content.completion.chunk", timestamp=start + int(ttft * MS))
    if error:
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=start + int(ms * MS))


def _json_str(text: str) -> str:
    import json

    return json.dumps(text)


@pytest.fixture
def two_cells(shell: InteractiveShell) -> InteractiveShell:
    """Two traced cells: three calls of two models (one error), a tool span."""
    shell.user_ns["llm_call"] = llm_call
    result, _ = run(shell, "%%trace --quiet first\n"
                           "llm_call('gpt-4o-mini', inp=1000, out=100, ms=800, ttft=200)\n"
                           "llm_call('gpt-4o', inp=300, out=30, ms=1200)\n")
    assert result.success
    result, _ = run(shell, "%%trace --quiet second\n"
                           "import llmtrace_nb\n"
                           "with llmtrace_nb.span('search', kind='tool', q='paris'):\n"
                           "    pass\n"
                           "llm_call('gpt-4o', inp=50, out=0, ms=100, error='RateLimitError')\n")
    assert result.success
    return shell


# -- trace_widget -------------------------------------------------------------------------


def test_trace_widget_selects_spans_and_shows_their_messages() -> None:
    doc = agent_doc()
    w = trace_widget(doc)
    assert isinstance(w, TraceWidget) and isinstance(w, widgets.VBox)
    assert isinstance(w.figure, go.FigureWidget)
    assert len(w.selector.options) == 7
    assert w.selector.options[3][0].startswith("\u00a0" * 4 + "chat gpt-4o-mini · llm · "
                                                "1,384 tok · $0.0002118")
    # the first error is shown first
    assert w.selector.value == 5
    assert "RateLimitError" in _Parsed(w.detail.value).text
    w.selector.value = 3
    parsed = _Parsed(w.detail.value)
    assert "chat gpt-4o-mini" in parsed.text and "TTFT 310 ms" in parsed.text
    assert "system" in parsed.text and "Be brief." in parsed.text
    assert "Capital of France?" in parsed.text and "Paris." in parsed.text
    assert parsed.text.index("Capital of France?") < parsed.text.index("Paris.")
    # a tool span: its call and result as turns
    w.select(doc["spans"][4]["span_id"])
    assert w.selector.value == 4
    assert '→ search({"q": "x"})' in _Parsed(w.detail.value).text
    assert "3 hits" in _Parsed(w.detail.value).text


def test_trace_widget_click_on_a_bar_selects_its_span() -> None:
    w = trace_widget(agent_doc())
    retrieval = next(i for i, t in enumerate(w.figure.data) if t.name == "retrieval")
    click(w.figure, retrieval, 0)
    assert w.selector.value == 1 and "retrieve" in _Parsed(w.detail.value).text
    wait = next(i for i, t in enumerate(w.figure.data) if t.name == "before first token")
    click(w.figure, wait, 0)
    assert w.selector.value == 3


def test_trace_widget_escapes_everything() -> None:
    doc = xss_doc()
    w = trace_widget(doc)
    llm = next(i for i, s in enumerate(doc["spans"]) if s.get("input_messages")
               and s["kind"] == "llm")
    for index in range(len(doc["spans"])):
        w.select(index)
        for h in html_widgets(w):
            assert_inert_html(h.value)
    w.select(llm)
    text = _Parsed(w.detail.value).text
    for payload in XSS_PAYLOADS:  # every payload is shown, as text
        assert payload in text
    assert html.escape(XSS_PAYLOADS[1]) in w.detail.value
    assert "&lt;script&gt;" in w.header.value


def test_trace_widget_of_an_empty_trace_and_of_a_trace_view() -> None:
    w = trace_widget(empty_doc())
    assert w.selector.options == () and w.selector.value is None
    assert "no spans in this trace" in _Parsed(w.detail.value).text
    view = TraceView(agent_doc())
    assert isinstance(view.widget(), TraceWidget)
    assert trace_widget(view).selector.value == 5


def test_span_detail_of_a_span_with_omitted_detail() -> None:
    text = _Parsed(span_detail_html({"name": "x", "kind": "llm", "detail": "omitted",
                                     "duration_ms": 5})).text
    assert "left out" in text and "5 ms" in text


# -- explore ------------------------------------------------------------------------------


def table_names(ex: Explorer) -> list[str]:
    """The name column of the explorer's table, top to bottom."""
    rows = ex.table.value.split("<tr>")[2:]  # the header row first
    return [html.unescape(r.split("<td>")[2].split("</td>")[0]) for r in rows]


def test_explore_filters_change_the_table_and_the_charts(two_cells: InteractiveShell) -> None:
    ex = explore()
    try:
        assert isinstance(ex, Explorer) and isinstance(ex, widgets.VBox)
        spans = llmtrace_nb.spans_df()
        assert len(ex.spans) == len(spans) == 6  # 2 roots, 3 calls, 1 tool
        assert sorted(table_names(ex)) == sorted(spans["name"])
        models = {v for _, v in ex.filters["model"].options}
        assert models == {ALL, "gpt-4o", "gpt-4o-mini", NONE}
        cost = ex.figures["cost"]
        assert set(cost.data[0].x) == {"gpt-4o", "gpt-4o-mini"}

        ex.filters["model"].value = "gpt-4o"
        assert table_names(ex) == ["chat gpt-4o", "chat gpt-4o"]
        assert list(cost.data[0].x) == ["gpt-4o"]
        expected = spans.loc[spans["model"] == "gpt-4o", "cost_usd"].sum()
        assert cost.data[0].y[0] == pytest.approx(expected)
        points = [t for t in ex.figures["tokens"].data]
        assert [t.name for t in points] == ["gpt-4o"] and len(points[0].x) == 2
        assert "2 of 6 spans" in _Parsed(ex.status.value).text

        ex.filters["status"].value = "error"
        assert table_names(ex) == ["chat gpt-4o"]
        assert "RateLimitError" in _Parsed(ex.table.value).text

        ex.filters["model"].value = ALL
        ex.filters["status"].value = ALL
        ex.filters["kind"].value = "tool"
        assert table_names(ex) == ["search"]
        assert [a.text for a in cost.layout.annotations] == ["no data"]  # no LLM calls
        timeline = ex.figures["timeline"]
        assert [t.name for t in timeline.data] == ["tool"]

        ex.filters["kind"].value = ALL
        first = next(v for label, v in ex.filters["cell"].options if label.endswith("first"))
        ex.filters["cell"].value = first
        assert sorted(table_names(ex)) == ["chat gpt-4o", "chat gpt-4o-mini", "first"]
        # the "no data" note of the empty cost chart is gone again
        assert list(cost.layout.annotations) == [] and len(cost.data) == 1
    finally:
        ex.close()


def test_explore_table_is_capped_and_says_so(two_cells: InteractiveShell) -> None:
    ex = explore(max_rows=2)
    try:
        assert "showing 2 of 6 matching spans, newest first" in _Parsed(ex.table.value).text
        assert len(table_names(ex)) == 2 and len(ex.span_select.options) == 2
    finally:
        ex.close()


def test_explore_span_detail_from_the_selector_and_from_a_click(
        two_cells: InteractiveShell) -> None:
    ex = explore()
    try:
        spans = llmtrace_nb.spans_df()
        mini = spans[spans["model"] == "gpt-4o-mini"].iloc[0]
        ex.span_select.value = mini["span_id"]
        text = _Parsed(ex.detail.value).text
        assert "chat gpt-4o-mini" in text and "Capital of France?" in text
        assert "Paris." in text and "TTFT 200 ms" in text

        tokens = ex.figures["tokens"]
        gpt4o = next(i for i, t in enumerate(tokens.data) if t.name == "gpt-4o")
        clicked = tokens.data[gpt4o].customdata[0]
        click(tokens, gpt4o, 0)
        assert ex.selected == clicked and ex.span_select.value == clicked
        assert "chat gpt-4o" in _Parsed(ex.detail.value).text
    finally:
        ex.close()


def test_explore_refresh_picks_up_new_spans(two_cells: InteractiveShell) -> None:
    ex = explore()
    try:
        assert ex.poll() is False  # nothing new
        with llmtrace_nb.span("late tool", kind="tool"):
            pass
        assert "late tool" not in table_names(ex)
        assert ex.poll() is True
        assert table_names(ex)[0] == "late tool"  # newest first
        assert "tool" in {v for _, v in ex.filters["kind"].options}

        result, _ = run(two_cells, "%%trace --quiet third\nllm_call('o3-mini', inp=5, "
                                   "out=5, ms=10)\n")
        assert result.success
        ex.refresh()
        assert "o3-mini" in {v for _, v in ex.filters["model"].options}
        assert any(label.endswith("third") for label, _ in ex.filters["cell"].options)
    finally:
        ex.close()


def test_explore_keeps_filters_across_refresh(two_cells: InteractiveShell) -> None:
    ex = explore()
    try:
        ex.filters["model"].value = "gpt-4o-mini"
        llm_call("gpt-4o-mini", inp=1, out=1, ms=5, name="another mini")
        llm_call("gpt-4o", inp=1, out=1, ms=5, name="another 4o")
        ex.refresh()
        assert ex.filters["model"].value == "gpt-4o-mini"
        assert sorted(table_names(ex)) == ["another mini", "chat gpt-4o-mini"]
        llmtrace_nb.spans_df()  # a filter value that no span has any more goes back to all
        two_cells.run_line_magic("llmtrace", "clear")
        ex.refresh()
        assert ex.filters["model"].value == ALL and table_names(ex) == []
        assert "no spans match" in _Parsed(ex.table.value).text
    finally:
        ex.close()


def test_explore_auto_refresh_polls_and_stops_when_closed(two_cells: InteractiveShell) -> None:
    ex = explore(auto_refresh=True)
    assert ex.polling
    with llmtrace_nb.span("arrives later", kind="tool"):
        pass
    assert wait_until(lambda: "arrives later" in table_names(ex))
    ex.auto_refresh.value = False
    assert wait_until(lambda: not ex.polling, 3)
    ex.auto_refresh.value = True
    assert ex.polling
    ex.close()
    assert ex.closed and wait_until(lambda: not ex.polling, 3)


def test_explore_poller_never_raises(two_cells: InteractiveShell,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    leaked: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: leaked.append(args.exc_value))
    ex = explore()
    try:
        def broken() -> pd.DataFrame:
            raise ValueError("<b>boom</b>")

        monkeypatch.setattr(ex, "_load", broken)
        ex.auto_refresh.value = True
        with llmtrace_nb.span("trigger", kind="tool"):
            pass
        assert wait_until(lambda: "refresh failed" in ex.status.value)
        assert "ValueError: <b>boom</b>" in _Parsed(ex.status.value).text
        assert_inert_html(ex.status.value)
        assert ex.polling and leaked == []
        # a refresh from the button reports the same way, never raises into the kernel
        ex.status.value = ""
        ex.refresh_button.click()
        assert "refresh failed" in ex.status.value
    finally:
        ex.close()
    assert wait_until(lambda: not ex.polling, 3)


def test_explore_escapes_everything(shell: InteractiveShell) -> None:
    shell.user_ns["llm_call"] = llm_call
    shell.user_ns["PAYLOADS"] = XSS_PAYLOADS
    result, _ = run(shell, "%%trace --quiet " + XSS_PAYLOADS[0] + "\n"
                           "for i, p in enumerate(PAYLOADS):\n"
                           "    llm_call(p, inp=10 + i, out=5, ms=50 + i, name=p, user=p,\n"
                           "             error=p if i == 0 else None)\n")
    assert result.success
    ex = explore()
    try:
        spans = llmtrace_nb.spans_df()
        for span_id in spans["span_id"]:
            ex.select(span_id)
            for h in html_widgets(ex):
                assert_inert_html(h.value)
        ex.select(spans[spans["name"] == XSS_PAYLOADS[2]]["span_id"].iloc[0])
        assert XSS_PAYLOADS[2] in _Parsed(ex.detail.value).text
        assert sorted(table_names(ex)) == sorted([*XSS_PAYLOADS, XSS_PAYLOADS[0]])
        assert "RateLimitError" not in ex.table.value  # the error type is a payload too
        assert html.escape(XSS_PAYLOADS[0]) in ex.table.value
        # filter labels are plain text in a dropdown; values still filter
        ex.filters["model"].value = XSS_PAYLOADS[3]
        assert table_names(ex) == [XSS_PAYLOADS[3]]
        for fig in ex.figures.values():
            for trace in fig.data:
                for text in trace.hovertext or ():
                    assert "<script" not in text and "<img" not in text
    finally:
        ex.close()


def test_explore_a_given_frame_and_without_a_session(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder()
    rec.span("chat", openai_chat("gpt-4o", inp=10, out=2))
    rec.span("chat", openai_chat("gpt-4o-mini", inp=10, out=2))
    frame = rec.frames.spans()
    ex = explore(frame)
    try:
        assert ex.auto_refresh.disabled and len(ex.spans) == 2
        ex.filters["model"].value = "gpt-4o-mini"
        assert len(ex.matching) == 1 and ex.poll() is False
    finally:
        ex.close()
    monkeypatch.setattr(_current, "current", lambda: None)
    ex = explore()
    try:
        assert "run %load_ext llmtrace_nb first" in _Parsed(ex.status.value).text
        assert [a.text for a in ex.figures["cost"].layout.annotations] == ["no data"]
    finally:
        ex.close()


def test_filter_spans_missing_values() -> None:
    rec = Recorder()
    rec.span("chat", openai_chat("gpt-4o", inp=10, out=2))
    rec.span("tool", {"llmtrace.kind": "tool"})
    spans = rec.frames.spans()
    assert filter_spans(spans, {"model": NONE})["name"].tolist() == ["tool"]
    assert filter_spans(spans, {"model": "gpt-4o"})["name"].tolist() == ["chat"]
    assert filter_spans(spans, {"cell": NONE, "kind": ALL}).shape[0] == 2


def test_explore_thumbs_judge_the_shown_call(two_cells: InteractiveShell) -> None:
    ex = llmtrace_nb.explore()
    try:
        assert all(b.disabled for b in ex.thumbs.values())  # nothing shown yet
        spans = llmtrace_nb.spans_df()
        tool = spans[spans["kind"] == "tool"].iloc[0]
        ex.span_select.value = tool["span_id"]
        assert ex.thumbs["down"].disabled and "LLM call" in ex.thumbs["down"].tooltip
        with pytest.raises(ValueError, match="LLM call"):
            ex.thumb("down")

        mini = spans[spans["model"] == "gpt-4o-mini"].iloc[0]
        ex.span_select.value = mini["span_id"]
        assert not ex.thumbs["down"].disabled
        ex.thumbs["down"].click()
        assert "recorded 👎" in ex.judged.value
        judged = llmtrace_nb.evaluations_df()
        assert judged[["evaluation", "label", "score", "span_id"]].to_dict("records") == [
            {"evaluation": "feedback", "label": "thumbs_down", "score": 0.0,
             "span_id": mini["span_id"]}]
        assert bool(judged["negative"].iloc[0])
        assert ex.selected == mini["span_id"]  # still shown after the refresh
        with pytest.raises(ValueError, match="'up' or 'down'"):
            ex.thumb("sideways")
        bare = explore()  # the view module's own: no judge given
        bare.select(mini["span_id"])
        assert bare.thumbs["up"].disabled and "judge" in bare.thumbs["up"].tooltip
        bare.close()
    finally:
        ex.close()


def test_explore_thumbs_are_off_for_a_given_frame(two_cells: InteractiveShell) -> None:
    spans = llmtrace_nb.spans_df()
    ex = llmtrace_nb.explore(spans)
    try:
        ex.span_select.value = spans[spans["model"] == "gpt-4o-mini"].iloc[0]["span_id"]
        assert ex.thumbs["up"].disabled and "live session" in ex.thumbs["up"].tooltip
    finally:
        ex.close()
