"""Plotly figures of traces and of the span DataFrames; plain functions, no widgets needed.

``waterfall`` draws one cell's trace document (the same picture as the HTML view);
``cost_by``, ``latency``, ``tokens_vs_latency`` and ``timeline`` draw the DataFrames of
``llmtrace_nb`` (by default the whole session's). Every function returns a
``plotly.graph_objects.Figure`` and never raises on empty data: it shows "no data".

Plotly renders hover text, tick labels, legend entries and titles as a subset of HTML
(``<b>``, ``<br>``, ``<a href>``…), so every string that comes from a span (names,
models, messages, attribute values) goes through :func:`escape` before it lands in one.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import _current
from .._read.semconv import PRICED_KINDS
from .._read.values import is_missing
from .._read.values import to_float as number
from .._shape.frames import llm_calls
from .html import ERROR_COLOR, KIND_COLORS, lighten
from .text import (
    format_cost,
    format_count,
    format_duration,
    headline,
    name_label,
    span_tokens,
)

# One color per kind, shared with the HTML twin and the JupyterLab renderer: html.py owns
# the palette, and the lighter share of a streamed call's bar before its first token.

#: colors of groups (models, cells…) in the DataFrame charts
GROUP_COLORS = ("#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#76B7B2", "#EDC948",
                "#FF9DA7", "#9C755F", "#BAB0AC", "#E15759")
TEMPLATE = "plotly_white"
FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif"
MONO = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
NONE_LABEL = "(none)"
#: the waterfall names rows on its axis up to this many spans; past it, hover tells
MAX_LABELED_ROWS = 150
MAX_LABEL_CHARS = 40
MAX_HOVER_CHARS = 160
#: the timeline draws at most this many spans (the most recent), to stay responsive
MAX_TIMELINE_SPANS = 5_000
#: box plots show every call as a point up to this many calls per group
MAX_BOX_POINTS = 60


# -- small helpers ------------------------------------------------------------------------


def escape(value: Any, limit: int | None = None, *, quote: bool = True) -> str:
    """``value`` as inert text for HTML (the widgets): truncated, then escaped."""
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=quote)


def plotly_text(value: Any, limit: int | None = None) -> str:
    """``value`` as inert text for a plotly label. Plotly reads a few tags and entities,
    so < > & are escaped; quotes are not: it would show "&quot;" as it is."""
    return escape(value, limit, quote=False)


def _one_line(value: Any, limit: int = MAX_HOVER_CHARS) -> str:
    """Escaped and on one line: a newline inside a name would break the hover layout."""
    return plotly_text(" ".join(str(value).split()) if value is not None else "", limit)


def _int(value: Any) -> int | None:
    f = number(value)
    return None if f is None else int(f)


def kind_color(kind: Any, error: bool = False) -> str:
    if error:
        return ERROR_COLOR
    return KIND_COLORS.get(str(kind), KIND_COLORS["other"])


def _layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    # The title at the top of the figure and the legend at its bottom, both measured on
    # the whole figure: the y labels of a waterfall make the plot narrow, and a legend
    # over the plot would wrap into the title.
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title, "x": 0.01, "xanchor": "left", "yref": "container", "y": 1.0,
               "yanchor": "top", "pad": {"t": 14}, "font": {"size": 14}},
        font={"family": FONT, "size": 12},
        margin={"l": 60, "r": 24, "t": 56, "b": 48},
        hoverlabel={"align": "left", "font": {"family": FONT}},
        legend={"orientation": "h", "xref": "container", "x": 0.01, "xanchor": "left",
                "yref": "container", "y": 0.0, "yanchor": "bottom", "title": {"text": ""},
                "font": {"size": 11}, "itemwidth": 30},
        **kwargs,
    )
    return fig


def no_data(fig: go.Figure, message: str = "no data") -> go.Figure:
    """Mark an empty figure: a centered note, and no axes to suggest there are values."""
    fig.add_annotation(text=plotly_text(message), x=0.5, y=0.5, xref="paper", yref="paper",
                       showarrow=False, font={"size": 16, "color": "#888"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=260)
    return fig


def as_document(trace: Any) -> Mapping[str, Any]:
    """A trace document from a document or anything carrying one (``TraceView``)."""
    doc = getattr(trace, "document", trace)
    if not isinstance(doc, Mapping):
        raise TypeError(f"expected a trace document or a TraceView, got {type(trace).__name__}")
    return doc


def _load(df: pd.DataFrame | None, *, calls: bool) -> tuple[pd.DataFrame, str]:
    """The frame to draw and the note to show if it is empty.

    With no frame given, the session's: ``llm_calls_df()`` when ``calls``, else
    ``spans_df()``; a session that was never enabled has no data rather than an error,
    since charts never raise on empty data.
    """
    if df is not None:
        return df, "no data"
    sess = _current.current()
    if sess is None:
        return pd.DataFrame(), "no data — run %load_ext llmtrace_nb first"
    frame = sess.spans()
    return (llm_calls(frame) if calls else frame), "no data"


def llm_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The LLM and embedding calls of a frame, each once (all of it if it has no ``kind``
    column): a row marked ``duplicate_of`` describes a call another row counts."""
    if "kind" not in df.columns or df.empty:
        return df
    calls = df["kind"].astype("string").isin(PRICED_KINDS).fillna(False)
    if "duplicate_of" in df.columns:
        calls &= df["duplicate_of"].isna()
    return df[calls]


def _keys(df: pd.DataFrame, by: str | Sequence[str]) -> list[str]:
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise KeyError(f"no column {missing!r}; columns are {', '.join(map(str, df.columns))}")
    return keys


def group_labels(df: pd.DataFrame, by: str | Sequence[str]) -> pd.Series:
    """One display label per row: the group's values joined, missing values as (none)."""
    keys = _keys(df, by)
    parts = [df[k].astype("object").map(lambda v: NONE_LABEL if is_missing(v) else str(v))
             for k in keys]
    labels = parts[0]
    for part in parts[1:]:
        labels = labels + " · " + part
    return labels.astype(str)


def group_colors(labels: Sequence[str]) -> dict[str, str]:
    """Colors by sorted label, so the same groups get the same colors in every chart."""
    return {label: GROUP_COLORS[i % len(GROUP_COLORS)]
            for i, label in enumerate(sorted(set(labels)))}


def _title_of(by: str | Sequence[str]) -> str:
    return plotly_text(by if isinstance(by, str) else " · ".join(by))


# -- waterfall ----------------------------------------------------------------------------


def tokens_text(span: Mapping[str, Any]) -> str | None:
    """``1,384 tokens (1,204 in · 180 out · 1,024 cached)``, or None without counts."""
    total = span_tokens(span)
    if total is None:
        return None
    inp, out = _int(span.get("input_tokens")), _int(span.get("output_tokens"))
    parts = [f"{format_count(inp or 0)} in", f"{format_count(out or 0)} out"]
    cached = _int(span.get("cache_read_tokens"))
    if cached:
        parts.append(f"{format_count(cached)} cached")
    reasoning = _int(span.get("reasoning_tokens"))
    if reasoning:
        parts.append(f"{format_count(reasoning)} reasoning")
    return f"{format_count(total)} tokens ({' · '.join(parts)})"


def span_hover(span: Mapping[str, Any]) -> str:
    """Hover text of one span (a document span or a DataFrame row), escaped."""
    kind = span.get("kind") or "other"
    lines = [f"<b>{_one_line(span.get('name'))}</b>",
             " · ".join([_one_line(kind), format_duration(number(span.get("duration_ms")))])]
    model = span.get("model")
    if not is_missing(model) and model:
        provider = span.get("provider")
        lines.append(f"model: {_one_line(model)}" + (
            f" ({_one_line(provider)})" if not is_missing(provider) and provider else ""))
    tokens = tokens_text(span)
    if tokens:
        lines.append(tokens)
    if not is_missing(span.get("duplicate_of")) and span.get("duplicate_of"):
        lines.append("the same call as another span: counted once, there")
    elif kind in PRICED_KINDS and tokens:
        lines.append(f"cost: {format_cost(number(span.get('cost_usd')))}")
    ttft = number(span.get("ttft_ms"))
    if ttft is not None:
        lines.append(f"first token after {format_duration(ttft)}")
    if span.get("status") == "error":
        error = span.get("error_type")
        lines.append(f"error: {_one_line(error if not is_missing(error) else 'error')}")
    return "<br>".join(lines)


def row_name(span: Mapping[str, Any]) -> str:
    """A span's name on one line, with its model or tool when the name does not say it
    (``text.name_label``)."""
    name = " ".join(str(span.get("name") or "").split())
    label = name_label(span)
    return f"{name} · {' '.join(label.split())}" if label else name


def _row_label(text: str, depth: int, width: int) -> str:
    """The row's name indented by depth and padded to ``width`` characters.

    Plotly right-aligns tick labels; padded to one width in a monospace font, they read
    as left-aligned, so the indentation shows the tree. Padding is counted on the raw
    text and the result escaped after (an entity renders as one character).
    """
    indent = "\u00a0\u00a0" * min(depth, 12)
    room = max(width - len(indent), 4)
    if len(text) > room:
        text = text[: room - 1] + "…"
    return plotly_text(indent + text + "\u00a0" * (room - len(text)))


def _waterfall_rows(spans: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for i, span in enumerate(spans):
        start = number(span.get("start_ms")) or 0.0
        duration = max(number(span.get("duration_ms")) or 0.0, 0.0)
        error = span.get("status") == "error"
        ttft = number(span.get("ttft_ms"))
        rows.append({
            "index": i, "span_id": span.get("span_id"), "start": start,
            "duration": duration, "error": error,
            "group": "error" if error else str(span.get("kind") or "other"),
            "color": kind_color(span.get("kind"), error),
            # the wait before the first token: only for streamed calls that had one
            "wait": min(ttft, duration) if ttft is not None and ttft > 0 else None,
            "hover": span_hover(span),
        })
    return rows


def waterfall(trace: Any) -> go.Figure:
    """One cell's spans as bars on a time axis (ms from the cell start), in tree order.

    The same picture as the trace view. Bars are colored by kind (errors red); a streamed
    call's wait before its first token is the lighter part of its bar. Rows are named on
    the axis up to ``MAX_LABELED_ROWS`` spans; past that, the hover text names them.

    Parameters
    ----------
    trace : Mapping or TraceView
        A trace document, or anything carrying one as ``.document`` (the ``TraceView``
        that ``llmtrace_nb.view()`` returns).

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per kind (errors in their own), plus a "before first token" trace drawn
        over streamed calls. Each bar's ``customdata`` is the span's index in the
        document. A trace without spans gives an empty figure that says so.

    Raises
    ------
    TypeError
        ``trace`` is neither a mapping nor carries one.

    See Also
    --------
    TraceView.figure : the same figure, from the view.

    Examples
    --------
    >>> from llmtrace_nb.views import charts
    >>> charts.waterfall(llmtrace_nb.view())  # doctest: +SKIP
    >>> charts.waterfall(llmtrace_nb.view(12).document)  # doctest: +SKIP
    """
    doc = as_document(trace)
    spans = [s for s in doc.get("spans") or [] if isinstance(s, Mapping)]
    title = plotly_text(headline(doc) if "totals" in doc else doc.get("name"), 200)
    fig = _layout(go.Figure(), title)
    if not spans:
        return no_data(fig, "no spans in this trace")
    rows = _waterfall_rows(spans)
    order = [*KIND_COLORS, "error"]
    groups = sorted({r["group"] for r in rows},
                    key=lambda g: order.index(g) if g in order else len(order))
    for group in groups:
        members = [r for r in rows if r["group"] == group]
        fig.add_trace(go.Bar(
            orientation="h", name=plotly_text(group), legendgroup=plotly_text(group),
            y=[r["index"] for r in members], base=[r["start"] for r in members],
            x=[r["duration"] for r in members], customdata=[r["index"] for r in members],
            marker={"color": members[0]["color"], "line": {"width": 0}},
            hovertext=[r["hover"] for r in members],
            hovertemplate="%{hovertext}<extra></extra>", width=0.7))
    waits = [r for r in rows if r["wait"] is not None]
    if waits:
        # drawn over the span's own bar (barmode overlay), so each span keeps one bar
        fig.add_trace(go.Bar(
            orientation="h", name="before first token",
            y=[r["index"] for r in waits], base=[r["start"] for r in waits],
            x=[r["wait"] for r in waits], customdata=[r["index"] for r in waits],
            marker={"color": [lighten(r["color"]) for r in waits], "line": {"width": 0}},
            hovertext=[r["hover"] for r in waits],
            hovertemplate="%{hovertext}<extra></extra>", width=0.7))
    _waterfall_axes(fig, spans, rows)
    return fig


def _waterfall_axes(fig: go.Figure, spans: Sequence[Mapping[str, Any]],
                    rows: Sequence[Mapping[str, Any]]) -> None:
    n = len(rows)
    labeled = n <= MAX_LABELED_ROWS
    names = [row_name(s) for s in spans]
    depths = [int(number(s.get("depth")) or 0) for s in spans]
    width = min(MAX_LABEL_CHARS, max(len(name) + 2 * min(depth, 12)
                                     for name, depth in zip(names, depths, strict=True)))
    end = max(r["start"] + r["duration"] for r in rows) or 1.0
    fig.update_layout(
        barmode="overlay", bargap=0.25, showlegend=True,
        height=int(min(max(110 + 24 * n, 240), 3000) if labeled else min(110 + 4 * n, 3000)),
        margin={"l": 10, "r": 24, "t": 56, "b": 48},
    )
    fig.update_xaxes(title_text="ms from cell start", range=[0, end * 1.02],
                     rangemode="tozero", showgrid=True, zeroline=False,
                     separatethousands=True)
    fig.update_yaxes(
        autorange="reversed", showgrid=False, zeroline=False, showticklabels=labeled,
        tickmode="array" if labeled else "auto",
        tickvals=list(range(n)) if labeled else None,
        ticktext=[_row_label(name, depth, width)
                  for name, depth in zip(names, depths, strict=True)] if labeled else None,
        tickfont={"family": MONO, "size": 12}, automargin=True)


# -- DataFrame charts ---------------------------------------------------------------------


def cost_by(df: pd.DataFrame | None = None, by: str | Sequence[str] = "model") -> go.Figure:
    """Total cost per group of LLM calls, as bars, most expensive first.

    Groups none of whose calls has a price are drawn as "no price" markers, not as $0;
    the hover text counts a group's calls and those without a price.

    Parameters
    ----------
    df : pandas.DataFrame, optional
        Calls or spans with ``cost_usd`` and the ``by`` columns (README, "DataFrames");
        only its LLM and embedding calls that count (``duplicate_of`` null) are drawn.
        Default: the session's ``llm_calls_df()``.
    by : str or sequence of str, default "model"
        The column (or columns, joined with " · ") to group by; missing values are
        "(none)".

    Returns
    -------
    plotly.graph_objects.Figure
        One bar per priced group; no calls give an empty figure that says so.

    Raises
    ------
    KeyError
        ``by`` names a column the calls do not have.

    Examples
    --------
    >>> from llmtrace_nb.views import charts
    >>> charts.cost_by(by="model")  # doctest: +SKIP
    >>> charts.cost_by(llmtrace_nb.llm_calls_df(), by=["cell_name", "model"])  # doctest: +SKIP
    """
    frame, note = _load(df, calls=True)
    calls = llm_rows(frame)
    fig = _layout(go.Figure(), f"cost by {_title_of(by)}")
    if calls.empty:
        return no_data(fig, note)
    labels = group_labels(calls, by)
    cost = pd.to_numeric(calls["cost_usd"], errors="coerce").astype("float64")
    grouped = pd.DataFrame({"label": labels.to_numpy(), "cost": cost.to_numpy()}).groupby(
        "label", sort=True)
    table = pd.DataFrame({"cost": grouped["cost"].sum(min_count=1),
                          "calls": grouped.size(),
                          "unpriced": grouped["cost"].agg(lambda s: int(s.isna().sum()))})
    priced = table[table["cost"].notna()].sort_values("cost", ascending=False, kind="stable")
    unpriced = table[table["cost"].isna()]
    colors = group_colors(table.index)
    if len(priced):
        fig.add_trace(go.Bar(
            name="cost", x=[plotly_text(g) for g in priced.index], y=priced["cost"].tolist(),
            marker={"color": [colors[g] for g in priced.index]},
            text=[format_cost(c) for c in priced["cost"]], textposition="outside",
            cliponaxis=False, showlegend=False,
            hovertext=[_cost_hover(g, r) for g, r in priced.iterrows()],
            hovertemplate="%{hovertext}<extra></extra>"))
    if len(unpriced):
        fig.add_trace(go.Scatter(
            name="no price", x=[plotly_text(g) for g in unpriced.index],
            y=[0.0] * len(unpriced),
            mode="markers+text", text=["no price"] * len(unpriced), textposition="top center",
            marker={"symbol": "line-ew", "size": 28, "line": {"width": 3, "color": "#999"}},
            textfont={"color": "#777"}, showlegend=False,
            hovertext=[_cost_hover(g, r) for g, r in unpriced.iterrows()],
            hovertemplate="%{hovertext}<extra></extra>"))
    top = float(priced["cost"].max()) if len(priced) else 0.0
    fig.update_yaxes(title_text="cost (USD)", tickprefix="$", exponentformat="none",
                     rangemode="tozero", range=[0, top * 1.18 if top > 0 else 1])
    fig.update_xaxes(type="category", title_text=_title_of(by))
    fig.update_layout(height=380, bargap=0.35)
    return fig


def _cost_hover(label: str, row: pd.Series) -> str:
    lines = [f"<b>{_one_line(label)}</b>", f"{format_count(int(row['calls']))} calls",
             f"cost: {format_cost(number(row['cost']))}"]
    if row["unpriced"]:
        lines.append(f"{format_count(int(row['unpriced']))} calls without a price "
                     "(set one with %llmtrace price)")
    return "<br>".join(lines)


#: pixels per group row in the latency chart, and the share of it left around a box
LATENCY_ROW_PX = 80
LATENCY_BOXGAP = 0.6


def _quantile_markers(fig: go.Figure, values: pd.DataFrame, order: Sequence[str],
                      col: int | None) -> None:
    """p50 and p95 of each group: markers on the group's box, labels just off it.

    The labels are annotations with a background, p95 above the box and p50 below, so
    close values never print over each other or over the box's lines.
    """
    grouped = values.groupby("label", sort=False)["value"]
    where = {"row": 1, "col": col} if col is not None else {}
    axis = "" if col in (None, 1) else str(col)
    offset = LATENCY_ROW_PX * (1 - LATENCY_BOXGAP) / 2 + 9
    for q, symbol, shift in ((0.5, "diamond", -offset), (0.95, "triangle-right", offset)):
        qs = grouped.quantile(q).reindex(order)
        name = f"p{round(q * 100)}"
        texts = [f"{name} {format_duration(v)}" for v in qs]
        fig.add_trace(go.Scatter(
            name=name, y=[plotly_text(g) for g in qs.index], x=qs.tolist(), mode="markers",
            marker={"symbol": symbol, "size": 9, "color": "#333"}, text=texts,
            showlegend=False,  # the labels say p50 / p95; a legend would repeat them
            hovertemplate="%{text}<extra>%{y}</extra>"), **where)
        for group, value, text in zip(qs.index, qs.tolist(), texts, strict=True):
            fig.add_annotation(x=value, y=plotly_text(group), xref=f"x{axis}", yref=f"y{axis}",
                               text=text, showarrow=False, yshift=shift,
                               font={"size": 11, "color": "#333"},
                               bgcolor="rgba(255,255,255,0.75)", borderpad=1)


def _boxes(fig: go.Figure, values: pd.DataFrame, colors: Mapping[str, str],
           col: int | None) -> None:
    """One horizontal box per group (long model names read better on the y axis)."""
    order = sorted(values["label"].unique())
    where = {"row": 1, "col": col} if col is not None else {}
    for label in order:
        xs = values.loc[values["label"] == label, "value"]
        fig.add_trace(go.Box(
            name=plotly_text(label), y=[plotly_text(label)] * len(xs), x=xs.tolist(),
            orientation="h", marker={"color": colors[label], "size": 5, "opacity": 0.6},
            line={"width": 1.5}, fillcolor=lighten(colors[label], 0.7),
            boxpoints="all" if len(xs) <= MAX_BOX_POINTS else "outliers",
            jitter=0.5, pointpos=0, showlegend=False,
            hovertemplate="%{x:,.0f} ms<extra>%{y}</extra>"), **where)
    _quantile_markers(fig, values, order, col)


def latency(df: pd.DataFrame | None = None, by: str | Sequence[str] = "model") -> go.Figure:
    """Latency per group as box plots with p50/p95 marked; TTFT beside it when known.

    Parameters
    ----------
    df : pandas.DataFrame, optional
        Calls with ``duration_ms`` (and ``ttft_ms``) and the ``by`` columns; default the
        session's ``llm_calls_df()``.
    by : str or sequence of str, default "model"
        The column (or columns) to group by.

    Returns
    -------
    plotly.graph_objects.Figure
        One horizontal box per group (every call a point up to ``MAX_BOX_POINTS``). The
        p50 and p95 of each group are the ``p50`` / ``p95`` scatter traces (``x`` the
        value in ms, ``y`` the group), computed as ``DataFrame.quantile`` does. When any
        call has a time to first token, a second panel shows TTFT per group. No
        durations give an empty figure that says so.

    Raises
    ------
    KeyError
        ``by`` names a column the calls do not have.

    Examples
    --------
    >>> from llmtrace_nb.views import charts
    >>> charts.latency(by="model")  # doctest: +SKIP
    """
    frame, note = _load(df, calls=True)
    title = f"latency by {_title_of(by)}"
    if frame.empty or "duration_ms" not in frame.columns:
        return no_data(_layout(go.Figure(), title), note)
    labels = group_labels(frame, by)

    def values(column: str) -> pd.DataFrame:
        if column not in frame.columns:
            return pd.DataFrame(columns=["label", "value"])
        return pd.DataFrame({"label": labels.to_numpy(), "value": pd.to_numeric(
            frame[column], errors="coerce").astype("float64").to_numpy()}).dropna()

    durations, ttft = values("duration_ms"), values("ttft_ms")
    if durations.empty:
        return no_data(_layout(go.Figure(), title), note)
    colors = group_colors(labels)
    groups = sorted(durations["label"].unique())
    if ttft.empty:
        fig = _layout(go.Figure(), title)
        _boxes(fig, durations, colors, None)
        fig.update_xaxes(title_text="duration (ms)")
    else:
        fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                            column_widths=[0.6, 0.4], subplot_titles=(
                                "duration of the call", "time to first token (streamed)"))
        fig.update_annotations(font_size=12)  # the panel titles, before our labels
        _layout(fig, title)
        _boxes(fig, durations, colors, 1)
        _boxes(fig, ttft, colors, 2)
        fig.update_xaxes(title_text="ms")
    fig.update_xaxes(rangemode="tozero", separatethousands=True, zeroline=False)
    # every panel lists every group, in one order, so rows line up across panels
    fig.update_yaxes(type="category", categoryorder="array", autorange="reversed",
                     categoryarray=[plotly_text(g) for g in groups], automargin=True)
    fig.update_layout(height=int(min(max(150 + LATENCY_ROW_PX * len(groups), 300), 1600)),
                      boxgap=LATENCY_BOXGAP)
    return fig


def total_tokens(frame: pd.DataFrame) -> pd.Series:
    """``total_tokens``, else input + output where either is known."""
    def col(name: str) -> pd.Series:
        if name not in frame.columns:
            return pd.Series(float("nan"), index=frame.index)
        return pd.to_numeric(frame[name], errors="coerce").astype("float64")

    inp, out = col("input_tokens"), col("output_tokens")
    summed = inp.fillna(0) + out.fillna(0)
    summed[inp.isna() & out.isna()] = float("nan")
    return col("total_tokens").fillna(summed)


def tokens_vs_latency(df: pd.DataFrame | None = None, color: str = "model") -> go.Figure:
    """Each LLM call as a point: total tokens against duration, colored by ``color``.

    Parameters
    ----------
    df : pandas.DataFrame, optional
        Calls with ``duration_ms`` and token counts (``total_tokens``, else input +
        output); default the session's ``llm_calls_df()``. Calls without both are left
        out.
    color : str, default "model"
        The column whose values color the points, one legend entry each.

    Returns
    -------
    plotly.graph_objects.Figure
        One scatter trace per color group (WebGL past 5,000 points); each point's
        ``customdata`` is its span id. No such calls give an empty figure that says so.

    Raises
    ------
    KeyError
        ``color`` names a column the calls do not have.

    Examples
    --------
    >>> from llmtrace_nb.views import charts
    >>> charts.tokens_vs_latency(color="cell_name")  # doctest: +SKIP
    """
    frame, note = _load(df, calls=True)
    fig = _layout(go.Figure(), "tokens vs latency")
    if frame.empty or "duration_ms" not in frame.columns:
        return no_data(fig, note)
    points = frame.assign(_tokens=total_tokens(frame), _ms=pd.to_numeric(
        frame["duration_ms"], errors="coerce").astype("float64"))
    points = points[points["_tokens"].notna() & points["_ms"].notna()]
    if points.empty:
        return no_data(fig, "no calls with token counts")
    labels = group_labels(points, color)
    colors = group_colors(labels)
    scatter = go.Scattergl if len(points) > 5_000 else go.Scatter
    for label in sorted(colors):
        members = points[(labels == label).to_numpy()]
        records = members.to_dict("records")
        fig.add_trace(scatter(
            name=plotly_text(label, 60), x=members["_tokens"].tolist(),
            y=members["_ms"].tolist(),
            mode="markers", marker={"color": colors[label], "size": 9, "opacity": 0.8},
            customdata=[r.get("span_id") for r in records],
            hovertext=[span_hover(r) for r in records],
            hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_xaxes(title_text="total tokens", rangemode="tozero", separatethousands=True)
    fig.update_yaxes(title_text="duration (ms)", rangemode="tozero", separatethousands=True)
    fig.update_layout(height=380, legend_title_text=plotly_text(color))
    return fig


def cell_label(cell: Any, name: Any) -> str:
    """``[12] rag-eval``; spans of no cell are "outside cells"."""
    number_ = _int(cell)
    if number_ is None:
        return "outside cells" if is_missing(name) or not name else str(name)
    return f"[{number_}] {name}" if not is_missing(name) and name else f"[{number_}]"


def timeline(df: pd.DataFrame | None = None) -> go.Figure:
    """Spans over wall-clock time (UTC), one lane per cell, colored by kind (errors red).

    Longer spans are drawn first, so the calls inside a cell or an agent stay visible on
    top of it. At most ``MAX_TIMELINE_SPANS`` spans, the most recent, are drawn (the
    title says so when some are left out).

    Parameters
    ----------
    df : pandas.DataFrame, optional
        Spans with ``start_time`` and ``duration_ms`` (``cell``, ``cell_name``, ``kind``
        and ``status`` when present); default the session's ``spans_df()``.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per kind (and errors), lanes in the order their cells started;
        each bar's ``customdata`` is its span id. No spans give an empty figure that
        says so.

    Examples
    --------
    >>> from llmtrace_nb.views import charts
    >>> charts.timeline()  # doctest: +SKIP
    >>> charts.timeline(llmtrace_nb.spans_df().query("cell == 12"))  # doctest: +SKIP
    """
    frame, note = _load(df, calls=False)
    fig = _layout(go.Figure(), "timeline")
    needed = {"start_time", "duration_ms"}
    if frame.empty or not needed <= set(frame.columns):
        return no_data(fig, note)
    frame = frame[frame["start_time"].notna()]
    shown = frame.sort_values("start_time").tail(MAX_TIMELINE_SPANS)
    if shown.empty:
        return no_data(fig, note)
    if len(shown) < len(frame):
        fig.update_layout(title_text=f"timeline (the last {len(shown):,} of "
                                     f"{len(frame):,} spans)")
    records = shown.to_dict("records")
    for r in records:
        r["_lane"] = cell_label(r.get("cell"), r.get("cell_name"))
        r["_group"] = _timeline_group(r)
    lanes = list(dict.fromkeys(r["_lane"] for r in records))  # in order of first start
    _timeline_traces(fig, records)
    height = min(max(150 + 40 * len(lanes), 260), 2000)
    fig.update_layout(barmode="overlay", showlegend=True, height=height)
    fig.update_xaxes(type="date", title_text="time (UTC)")
    fig.update_yaxes(type="category", autorange="reversed", categoryorder="array",
                     categoryarray=[plotly_text(lane, 60) for lane in lanes], automargin=True)
    return fig


_TIMELINE_WIDTHS = {"cell": 0.8, "agent": 0.6, "chain": 0.6, "other": 0.6}


def _timeline_group(row: Mapping[str, Any]) -> str:
    return "error" if row.get("status") == "error" else str(row.get("kind") or "other")


def _utc_naive(value: Any) -> Any:
    """Plotly date axes have no time zone: hand them naive UTC times."""
    ts = pd.Timestamp(value)
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def _timeline_traces(fig: go.Figure, records: list[dict[str, Any]]) -> None:
    # cells under agents and chains under everything else: drawing order is trace order
    order = ["cell", "agent", "chain", "other", "retrieval", "tool", "embedding", "llm",
             "error"]
    groups = sorted({r["_group"] for r in records},
                    key=lambda g: order.index(g) if g in order else len(order))
    for group in groups:
        members = sorted((r for r in records if r["_group"] == group),
                         key=lambda r: -(number(r.get("duration_ms")) or 0.0))
        fig.add_trace(go.Bar(
            orientation="h", name=plotly_text(group),
            y=[plotly_text(r["_lane"], 60) for r in members],
            base=[_utc_naive(r["start_time"]) for r in members],
            x=[max(number(r.get("duration_ms")) or 0.0, 0.0) for r in members],
            # nested kinds thinner, so an agent shows around the calls it makes
            width=_TIMELINE_WIDTHS.get(group, 0.4),
            marker={"color": kind_color(group, group == "error"),
                    "opacity": 0.45 if group == "cell" else 0.9,
                    # a hairline keeps back-to-back calls apart
                    "line": {"width": 0 if group == "cell" else 0.5, "color": "white"}},
            customdata=[r.get("span_id") for r in members],
            hovertext=[span_hover(r) for r in members],
            hovertemplate="%{hovertext}<extra></extra>"))

