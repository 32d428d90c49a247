"""Interactive views on ipywidgets: the session explorer and the per-cell trace widget.

``explore()`` is a dashboard over every collected span: filters, linked plotly charts,
a table of the matching spans and the detail of one of them, refreshed on demand or as
spans arrive. ``trace_widget(doc)`` is one cell's trace for frontends without the
JupyterLab extension, built from the trace document only.

``ipywidgets.HTML`` renders its value as HTML, so every string that comes from a span
(names, models, messages, attributes) is escaped before it lands in one. Dropdown labels
are set as text by the frontend and need no escaping.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from .. import _current
from .._read.semconv import PRICED_KINDS
from .._read.values import as_text, is_missing
from .._read.values import to_float as number
from . import charts
from .charts import escape
from .text import format_cost, format_count, format_duration, plural, span_tokens, summary

#: table rows (and span choices) the explorer shows at most, newest first
MAX_TABLE_ROWS = 200
#: characters of one message or attribute shown in a detail panel
MAX_DETAIL_TEXT = 4_000
#: the auto-refresh polls the collector at most twice a second
MIN_POLL_INTERVAL = 0.5
#: filter values meaning "any" and "missing" (a model or cell no span has as a value)
ALL = ""
NONE = "\x00none"
FILTERS = ("cell", "model", "kind", "status")
CHART_HEIGHT = 340

# One scoped stylesheet for every HTML widget: JupyterLab's theme variables with
# fallbacks, so the widgets follow light and dark themes (and stay small: no inline
# style repeated on each of hundreds of table cells).
_CSS = """<style>
.lt-box { font-family: var(--jp-ui-font-family, -apple-system, 'Segoe UI', sans-serif);
  font-size: 13px; line-height: 1.45; color: var(--jp-ui-font-color1, #222); }
.lt-box .lt-muted { color: var(--jp-ui-font-color2, #666); }
.lt-box .lt-err { color: #D62728; font-weight: 600; }
.lt-box .lt-title { font-weight: 600; font-size: 14px; }
.lt-box .lt-mono { font-family: var(--jp-code-font-family, monospace); font-size: 12px; }
.lt-box pre.lt-text { white-space: pre-wrap; word-break: break-word; margin: 0;
  font-family: inherit; background: none; padding: 0; }
.lt-box .lt-turns { display: grid; grid-template-columns: max-content 1fr; gap: 6px 14px;
  margin: 8px 0; }
.lt-box .lt-role { font-weight: 600; color: var(--jp-ui-font-color2, #666); }
.lt-box table { border-collapse: collapse; font-size: inherit; }
.lt-box td, .lt-box th { padding: 2px 8px; white-space: nowrap; text-align: left;
  border-bottom: 1px solid var(--jp-border-color2, #ddd); vertical-align: top; }
.lt-box th { font-weight: 600; }
.lt-box .lt-num { text-align: right; font-variant-numeric: tabular-nums; }
.lt-box td.lt-wrap { white-space: normal; }
.lt-box .lt-scroll { max-height: 420px; overflow: auto; }
</style>"""


def _box(inner: str, cls: str = "") -> str:
    """A widget's HTML value: the stylesheet and one themed box."""
    return f'{_CSS}<div class="lt-box {cls}">{inner}</div>'


# -- values and detail ----------------------------------------------------------------------


def _clip(text: str, limit: int = MAX_DETAIL_TEXT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit:,} more characters]"


def _block(value: Any) -> str:
    """A text as an escaped block that keeps its line breaks."""
    return f'<pre class="lt-text">{escape(_clip(as_text(value)))}</pre>'


def _messages_html(messages: Any) -> list[str]:
    """Chat turns: a role label, then the text; tool calls as ``→ name(arguments)``."""
    if not isinstance(messages, (list, tuple)):
        return []
    turns = []
    for msg in messages:
        if not isinstance(msg, Mapping):
            continue
        role = msg.get("role") or "unknown"
        if not is_missing(msg.get("name")) and msg.get("name") and role == "tool":
            role = f"{role} · {msg['name']}"
        body = []
        content = msg.get("content")
        if not is_missing(content) and content is not None and content != "":
            body.append(_block(content))
        for call in msg.get("tool_calls") or ():
            if isinstance(call, Mapping):
                args = call.get("arguments")
                body.append(f'<div class="lt-mono">→ {escape(call.get("name") or "tool")}('
                            f'{escape(_clip(as_text(args))) if args is not None else ""})</div>')
        turns.append(
            f'<div class="lt-role">{escape(role)}</div>'
            f'<div>{"".join(body) or "<i>(empty)</i>"}</div>')
    return turns


def _attributes_html(attrs: Any) -> str:
    if not isinstance(attrs, Mapping) or not attrs:
        return ""
    rows = "".join(
        f'<tr><td class="lt-mono">{escape(k)}</td><td class="lt-wrap">{_block(v)}</td></tr>'
        for k, v in sorted(attrs.items(), key=lambda kv: str(kv[0])))
    return (f"<details><summary>attributes ({len(attrs):,})</summary>"
            f"<table>{rows}</table>"
            f"</details>")


def _facts(span: Mapping[str, Any]) -> list[str]:
    """The numbers line of a span: kind, model, duration, TTFT, tokens, cost, status."""
    facts = [escape(span.get("kind") or "other")]
    for key in ("model", "provider"):
        if not is_missing(span.get(key)) and span.get(key):
            facts.append(escape(span[key]))
    facts.append(format_duration(number(span.get("duration_ms"))))
    ttft = number(span.get("ttft_ms"))
    if ttft is not None:
        facts.append(f"TTFT {format_duration(ttft)}")
    tokens = charts.tokens_text(span)
    if tokens:
        facts.append(escape(tokens))
    if _duplicate(span):
        facts.append("the same call as another span: counted once, there")
    elif span.get("kind") in PRICED_KINDS and tokens:
        facts.append(format_cost(number(span.get("cost_usd"))))
    if not is_missing(span.get("finish_reasons")) and span.get("finish_reasons"):
        facts.append(escape(span["finish_reasons"]))
    return facts


def span_detail_html(span: Mapping[str, Any] | None) -> str:
    """One span's detail: name, numbers, messages as chat turns, attributes folded.

    ``span`` is a trace-document span or a ``spans_df()`` row as a dict.
    """
    if span is None:
        return _box("Select a span (or click a point) to see its messages.", "lt-muted")
    parts = [f'<div class="lt-title">{escape(span.get("name"))}</div>',
             f'<div class="lt-muted">{" · ".join(_facts(span))}</div>']
    if span.get("status") == "error":
        error = span.get("error_type")
        parts.append(f'<div class="lt-err">✕ '
                     f'{escape(error if not is_missing(error) and error else "error")}</div>')
    turns = _messages_html(span.get("input_messages")) + _messages_html(
        span.get("output_messages"))
    if turns:
        parts.append(f'<div class="lt-turns">{"".join(turns)}</div>')
    elif span.get("detail") == "omitted":
        parts.append('<div class="lt-muted">messages and attributes were left out '
                     "to keep the trace small</div>")
    parts.append(_attributes_html(span.get("attributes")))
    return _box("".join(parts))


def _row_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A DataFrame row with pandas' missing values as None, as a document span has."""
    return {k: (None if not isinstance(v, (list, dict, tuple)) and is_missing(v) else v)
            for k, v in row.items()}


def _replace_figure(target: go.FigureWidget, fig: go.Figure) -> None:
    """Show ``fig`` in a live FigureWidget.

    The frontend merges layout updates, so keys the new figure does not have (a "no
    data" note, a second subplot's axes) are reset explicitly, or they would linger.
    """
    stale = set(target.layout.to_plotly_json()) - set(fig.layout.to_plotly_json())
    target.data = ()
    if stale:
        target.plotly_relayout(dict.fromkeys(stale))
    target.add_traces(list(fig.data))
    target.layout = fig.layout


# -- the explorer ---------------------------------------------------------------------------


def _empty_spans() -> pd.DataFrame:
    from .._shape.frames import SPAN_COLUMNS

    return pd.DataFrame({c: pd.Series(dtype="object") for c in SPAN_COLUMNS})


def _filter_options(spans: pd.DataFrame, column: str) -> list[tuple[str, str]]:
    """(label, value) choices of one filter, "all" first, from the values present."""
    everything = {"cell": "all cells", "model": "all models", "kind": "all kinds",
                  "status": "any status"}[column]
    options = [(everything, ALL)]
    if spans.empty or column not in spans.columns:
        return options
    if column == "cell":
        pairs = spans[["cell", "cell_name"]].drop_duplicates("cell")
        known = pairs[pairs["cell"].notna()].sort_values("cell")
        options += [(charts.cell_label(c, n), str(int(c))) for c, n in
                    zip(known["cell"], known["cell_name"], strict=True)]
        if pairs["cell"].isna().any():
            options.append(("outside cells", NONE))
        return options
    values = spans[column].astype("object")
    present = sorted({str(v) for v in values if not is_missing(v)})
    options += [(v, v) for v in present]
    if values.map(is_missing).any():
        options.append((f"(no {column})", NONE))
    return options


def filter_spans(spans: pd.DataFrame, chosen: Mapping[str, str]) -> pd.DataFrame:
    """The rows of ``spans`` matching every chosen filter value."""
    mask = pd.Series(True, index=spans.index)
    for column, value in chosen.items():
        if value == ALL or column not in spans.columns:
            continue
        col = spans[column]
        if value == NONE:
            mask &= col.isna()
        elif column == "cell":
            mask &= (col == int(value)).fillna(False).astype(bool)
        else:
            mask &= (col.astype("object").map(str) == value) & col.notna()
    return spans[mask.to_numpy()]


def _clock(value: Any) -> str:
    if is_missing(value):
        return "–"
    ts = pd.Timestamp(value)
    return ts.strftime("%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def _table_row(r: Mapping[str, Any]) -> str:
    status = str(r.get("status") or "")
    if status == "unset":  # most spans: nothing to say
        status = ""
    elif status == "error":
        error = r.get("error_type")
        status = (f'<span class="lt-err">✕ '
                  f'{escape(error if not is_missing(error) and error else "error")}</span>')
    tokens = span_tokens(r)
    priced = r.get("kind") in PRICED_KINDS and tokens is not None and not _duplicate(r)
    cells = [
        ("lt-num", _clock(r.get("start_time"))),
        ("", escape(charts.cell_label(r.get("cell"), r.get("cell_name")), 40)),
        ("", escape(r.get("name"), 60)),
        ("", escape(r.get("kind"))),
        ("", status),
        ("", escape(r.get("model") if not is_missing(r.get("model")) else "", 40)),
        ("lt-num", format_duration(number(r.get("duration_ms")))),
        ("lt-num", "" if tokens is None else format_count(tokens)),
        ("lt-num", format_cost(number(r.get("cost_usd"))) if priced else ""),
    ]
    return "<tr>" + "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>"
                            for c, v in cells) + "</tr>"


def spans_table_html(spans: pd.DataFrame, max_rows: int = MAX_TABLE_ROWS) -> str:
    """The newest ``max_rows`` spans as an escaped HTML table, saying how many are shown."""
    if spans.empty:
        return _box("no spans match", "lt-muted")
    newest = spans.sort_values("start_time", ascending=False, kind="stable").head(max_rows)
    numeric = ("time (UTC)", "duration", "tokens", "cost")
    heads = ["time (UTC)", "cell", "name", "kind", "status", "model", "duration", "tokens",
             "cost"]
    head = "".join(f'<th class="lt-num">{h}</th>' if h in numeric else f"<th>{h}</th>"
                   for h in heads)
    body = "".join(_table_row(r) for r in newest.to_dict("records"))
    caption = (f"showing {len(newest):,} of {len(spans):,} matching spans, newest first"
               if len(newest) < len(spans) else f"{plural(len(spans), 'matching span')}")
    return _box(f'<div class="lt-muted">{caption}</div><div class="lt-scroll"><table>'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _span_choice(r: Mapping[str, Any]) -> str:
    name = " ".join(str(r.get("name") or "").split())
    name = name if len(name) <= 60 else name[:59] + "…"
    return (f"{_clock(r.get('start_time'))} · {name} · {r.get('kind')} · "
            f"{format_duration(number(r.get('duration_ms')))}")


def _status_html(total: int, matching: pd.DataFrame, calls: pd.DataFrame, note: str) -> str:
    """``12 of 40 spans · 5 LLM calls · 3,210 tokens · $0.0123 · 1 error · updated …``"""
    parts = [f"{len(matching):,} of {plural(total, 'span')}", plural(len(calls), "LLM call")]
    if len(calls):
        cost = pd.to_numeric(calls["cost_usd"], errors="coerce").astype("float64")
        parts.append(f"{int(charts.total_tokens(calls).sum()):,} tokens")
        unpriced = int(cost.isna().sum())
        parts.append(format_cost(float(cost.sum()) if cost.notna().any() else None)
                     + (f" (+ {unpriced:,} without price)" if unpriced and cost.notna().any()
                        else ""))
    errors = int((matching["status"] == "error").sum()) if "status" in matching else 0
    if errors:
        parts.append(f'<span class="lt-err">{plural(errors, "error")}</span>')
    parts.append(f"updated {time.strftime('%H:%M:%S')}")
    text = " · ".join(parts)
    if note:
        text += f' · <span class="lt-err">{escape(note, 300)}</span>'
    return _box(text)


Source: TypeAlias = "pd.DataFrame | Callable[[], pd.DataFrame] | None"
#: records a judgement of a call (``llmtrace_nb.evaluate``: the notebook layer passes it
#: in, as views do not import it)
Judge: TypeAlias = Callable[..., str]


class _Poller:
    """Refreshes an explorer when the collector changes; holds it only weakly.

    Runs in a daemon thread and stops when told, when the explorer is closed or garbage
    collected. Nothing it does may raise into the kernel: errors are reported on the
    explorer's status line.
    """

    def __init__(self, owner: Explorer, interval: float) -> None:
        self._owner = weakref.ref(owner)
        self.interval = max(interval, MIN_POLL_INTERVAL)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmtrace-explore-refresh",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            owner = self._owner()
            if owner is None or owner.closed:
                return
            try:
                owner.poll()
            except Exception as exc:  # a poller must never take the kernel down
                try:
                    owner._report(exc)
                except Exception:
                    return
            del owner  # no strong reference while asleep, so it can be collected


class _Quiet:
    """``with self._muted():`` — widget changes made by the code, not the user."""

    def __init__(self, local: threading.local) -> None:
        self._local = local

    def __enter__(self) -> None:
        self._local.depth = getattr(self._local, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1


class Explorer(widgets.VBox):
    """The dashboard ``explore()`` returns; display it, or drive it from code.

    ``filters`` (cell, model, kind, status dropdowns), ``figures`` (plotly
    ``FigureWidget``s: ``cost``, ``latency``, ``tokens``, ``timeline``), ``table`` (HTML),
    ``span_select`` and ``detail``; ``refresh()`` reloads the spans, ``select(span_id)``
    shows one span, ``close()`` also stops the auto-refresh. ``spans`` holds the loaded
    spans, ``matching`` those the filters keep, ``selected`` the shown span's id.

    Parameters
    ----------
    source : DataFrame or callable, optional
        The spans: default the live session's; a DataFrame of spans, or a function
        returning one (called on every refresh).
    auto_refresh : bool, default False
        Start polling for new spans at once (live session only).
    max_rows : int, default 200
        The table and the span choices list the newest ``max_rows`` matching spans.
    interval : float, default 0.5
        Seconds between polls; never less than 0.5.
    judge : callable, optional
        What the thumbs call to record a judgement (``llmtrace_nb.evaluate``, which
        ``explore()`` passes); without it the thumbs are disabled.

    Examples
    --------
    >>> dashboard = llmtrace_nb.explore()  # doctest: +SKIP
    >>> dashboard.filters["model"].value = "gpt-4o-mini-2024-07-18"  # doctest: +SKIP
    >>> len(dashboard.matching)  # doctest: +SKIP
    12
    """

    def __init__(self, source: Source = None, *, auto_refresh: bool = False,
                 max_rows: int = MAX_TABLE_ROWS, interval: float = MIN_POLL_INTERVAL,
                 judge: Judge | None = None) -> None:
        super().__init__()
        self._source = source
        self._judge = judge
        self._max_rows = max_rows
        self._interval = interval
        self._lock = threading.RLock()
        # set while this thread's code changes widget values, so observers skip the echo;
        # thread-local, so a background refresh never swallows a user's filter change
        self._local = threading.local()
        self._poller: _Poller | None = None
        self._token: Any = None
        self._note = ""
        self.spans = _empty_spans()
        self.matching = self.spans
        self.selected: str | None = None
        self._build()
        self.refresh()
        if auto_refresh:
            self.auto_refresh.value = True

    # -- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        style = {"description_width": "initial"}
        self.filters = {name: widgets.Dropdown(description=name, options=[("all", ALL)],
                                               value=ALL, style=style,
                                               layout=widgets.Layout(width="220px"))
                        for name in FILTERS}
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh",
                                             layout=widgets.Layout(width="100px"))
        self.auto_refresh = widgets.Checkbox(description="auto-refresh", value=False,
                                             indent=False, layout=widgets.Layout(width="120px"))
        # auto-refresh follows the live session; a given frame or callable has no signal
        self.auto_refresh.disabled = self._source is not None
        self.status = widgets.HTML()
        self.figures = {name: go.FigureWidget() for name in
                        ("cost", "latency", "tokens", "timeline")}
        self.table = widgets.HTML()
        self.span_select = widgets.Dropdown(description="span", options=[], value=None,
                                            style=style, layout=widgets.Layout(width="640px"))
        self.detail = widgets.HTML(span_detail_html(None))
        self.thumbs = {thumb: widgets.Button(description=icon, disabled=True,
                                             tooltip=_NOT_A_CALL,
                                             layout=widgets.Layout(width="44px"))
                       for thumb, icon in (("up", "👍"), ("down", "👎"))}
        self.judged = widgets.HTML()
        charts_grid = widgets.GridBox(
            [widgets.Box([self.figures[n]], layout=widgets.Layout(min_width="0"))
             for n in ("cost", "latency", "tokens", "timeline")],
            layout=widgets.Layout(grid_template_columns="1fr 1fr", grid_gap="8px"))
        toolbar = widgets.HBox([*self.filters.values(), self.refresh_button,
                                self.auto_refresh],
                               layout=widgets.Layout(flex_flow="row wrap"))
        chooser = widgets.HBox([self.span_select, *self.thumbs.values(), self.judged],
                               layout=widgets.Layout(align_items="center"))
        self.children = [toolbar, self.status, charts_grid, self.table, chooser, self.detail]
        for thumb, button in self.thumbs.items():
            button.on_click(lambda _, t=thumb: self._safely(lambda: self.thumb(t)))
        for dropdown in self.filters.values():
            dropdown.observe(self._on_filter, names="value")
        self.refresh_button.on_click(lambda _: self._safely(self.refresh))
        self.auto_refresh.observe(self._on_auto, names="value")
        self.span_select.observe(self._on_span, names="value")

    # -- data -----------------------------------------------------------------------------

    def _load(self) -> pd.DataFrame:
        if isinstance(self._source, pd.DataFrame):
            return self._source
        if callable(self._source):
            return self._source()
        sess = _current.current()
        if sess is None:
            self._note = "nothing collected: run %load_ext llmtrace_nb first"
            return _empty_spans()
        return sess.spans()

    def _change_token(self) -> Any:
        """What changes when spans arrive, are evicted or cleared; cheap to read."""
        if self._source is not None:
            return None
        sess = _current.current()
        if sess is None:
            return None
        c = sess.collector
        # dropped grows when a full buffer evicts; the generation when it is cleared
        return (id(c), len(c), c.dropped, c.generation)

    def refresh(self) -> None:
        """Reload the spans, keep the filters that still apply, redraw everything.

        Returns
        -------
        None
        """
        with self._lock:
            self._note = ""
            self._token = self._change_token()
            self.spans = self._load()
            with self._muted():
                for name, dropdown in self.filters.items():
                    options = _filter_options(self.spans, name)
                    keep = dropdown.value if dropdown.value in {v for _, v in options} else ALL
                    dropdown.options = options
                    dropdown.value = keep
            self._update()

    def poll(self) -> bool:
        """Refresh if spans arrived, were evicted or cleared since the last refresh.

        Returns
        -------
        bool
            Whether it refreshed (never for a given DataFrame or function).
        """
        token = self._change_token()
        if token is None or token == self._token:
            return False
        self.refresh()
        return True

    def chosen(self) -> dict[str, str]:
        """The filters' current values.

        Returns
        -------
        dict of str to str
            Filter name (cell, model, kind, status) to its value: ``""`` for any, the
            ``"\\x00none"`` marker for a missing value.
        """
        return {name: str(d.value) for name, d in self.filters.items()}

    def _update(self) -> None:
        with self._lock:
            self.matching = filter_spans(self.spans, self.chosen())
            calls = charts.llm_rows(self.matching)
            self.status.value = _status_html(len(self.spans), self.matching, calls,
                                             self._note)
            figures = {"cost": charts.cost_by(calls), "latency": charts.latency(calls),
                       "tokens": charts.tokens_vs_latency(calls),
                       "timeline": charts.timeline(self.matching)}
            for name, fig in figures.items():
                fig.update_layout(height=CHART_HEIGHT, margin={"t": 56, "b": 40})
                _replace_figure(self.figures[name], fig)
            for name in ("tokens", "timeline"):  # their points carry span ids
                for trace in self.figures[name].data:
                    trace.on_click(self._on_point)
            self.table.value = spans_table_html(self.matching, self._max_rows)
            self._set_span_choices()

    def _set_span_choices(self) -> None:
        newest = self.matching.sort_values("start_time", ascending=False,
                                           kind="stable").head(self._max_rows)
        options = [(_span_choice(r), str(r["span_id"])) for r in newest.to_dict("records")]
        with self._muted():
            self.span_select.options = options
            values = {v for _, v in options}
            self.span_select.value = self.selected if self.selected in values else None
        if self.selected is not None and self.selected not in set(
                self.spans["span_id"].astype("object").map(str)):
            self.select(None)

    def select(self, span_id: str | None) -> None:
        """Show the detail of one span.

        Parameters
        ----------
        span_id : str or None
            The span's id (the ``span_id`` column); ``None``, or an id not loaded,
            clears the detail.

        Returns
        -------
        None
        """
        with self._lock:
            row = self._row_of(span_id)
            self.selected = str(span_id) if row is not None else None
            self.detail.value = span_detail_html(row)
            self._set_thumbs(row)
            with self._muted():
                known = {v for _, v in self.span_select.options}
                self.span_select.value = self.selected if self.selected in known else None

    def thumb(self, value: str) -> str:
        """Judge the shown call: thumbs ``"up"`` or ``"down"``, as the buttons do.

        Recorded with :func:`llmtrace_nb.evaluate` as evaluation ``feedback``: score 1
        and label ``thumbs_up``, or score 0 and label ``thumbs_down`` (negative).

        Parameters
        ----------
        value : {"up", "down"}
            The thumb.

        Returns
        -------
        str
            The judgement span's id.

        Raises
        ------
        ValueError
            ``value`` is neither, or the shown span is not an LLM call of the session.
        """
        if value not in ("up", "down"):
            raise ValueError(f"thumb must be 'up' or 'down', got {value!r}")
        with self._lock:
            row = self._row_of(self.selected)
            reason = _why_not_judgeable(row, self._source, self._judge)
            if reason is not None or row is None or self._judge is None:
                raise ValueError(reason or _NOT_A_CALL)
            up = value == "up"
            own = self._judge({"trace_id": str(row["trace_id"]), "span_id": str(row["span_id"])},
                           name="feedback", score=1.0 if up else 0.0,
                           label="thumbs_up" if up else "thumbs_down")
            self.refresh()
            self.judged.value = _box(f"recorded {'👍' if up else '👎'} for "
                                     f"{escape(row.get('name'), 80)}", "lt-muted")
            return own

    def _row_of(self, span_id: str | None) -> dict[str, Any] | None:
        if span_id is None:
            return None
        found = self.spans[self.spans["span_id"].astype("object").map(str) == str(span_id)]
        return _row_dict(found.iloc[0].to_dict()) if len(found) else None

    def _set_thumbs(self, row: Mapping[str, Any] | None) -> None:
        reason = _why_not_judgeable(row, self._source, self._judge)
        for thumb, button in self.thumbs.items():
            button.disabled = reason is not None
            button.tooltip = reason or (f"thumbs {thumb}: record a judgement of this call "
                                        "(evaluation 'feedback')")
        self.judged.value = ""

    # -- events ---------------------------------------------------------------------------

    def _safely(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as exc:  # shown on the status line rather than lost in a log
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        self.status.value = _box(f"refresh failed: {escape(type(exc).__name__)}: "
                                 f"{escape(exc, 300)}", "lt-err")

    def _muted(self) -> _Quiet:
        return _Quiet(self._local)

    @property
    def _quiet(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def _on_filter(self, change: Mapping[str, Any]) -> None:
        if not self._quiet:
            self._safely(self._update)

    def _on_span(self, change: Mapping[str, Any]) -> None:
        if not self._quiet:
            self._safely(lambda: self.select(change["new"]))

    def _on_point(self, trace: Any, points: Any, state: Any) -> None:
        def pick() -> None:
            if points.point_inds:
                self.select(trace.customdata[points.point_inds[0]])

        self._safely(pick)

    def _on_auto(self, change: Mapping[str, Any]) -> None:
        if change["new"]:
            self.start_auto_refresh()
        else:
            self.stop_auto_refresh()

    # -- auto-refresh and closing ---------------------------------------------------------

    def start_auto_refresh(self) -> None:
        """Poll for new spans twice a second, in a daemon thread, until stopped or closed.

        A no-op when the explorer has a given ``source`` or already polls.

        Returns
        -------
        None
        """
        if self._source is not None or (self._poller is not None and self._poller.alive):
            return
        self._poller = _Poller(self, self._interval)
        self._poller.start()

    def stop_auto_refresh(self) -> None:
        """Stop polling (a no-op if it does not poll).

        Returns
        -------
        None
        """
        if self._poller is not None:
            self._poller.stop()
            self._poller = None

    @property
    def polling(self) -> bool:
        """Whether the auto-refresh thread is running."""
        return self._poller is not None and self._poller.alive

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (the widget has no frontend model any more)."""
        return self.comm is None

    def close(self) -> None:
        """Stop the auto-refresh and close the dashboard and every widget in it.

        Returns
        -------
        None
        """
        self.stop_auto_refresh()
        for child in _descendants(self):
            if child is not self:
                child.close()
        super().close()


def _descendants(widget: widgets.Widget) -> Iterable[widgets.Widget]:
    yield widget
    for child in getattr(widget, "children", ()) or ():
        yield from _descendants(child)


_NOT_A_CALL = "select an LLM call to judge it"


def _why_not_judgeable(row: Mapping[str, Any] | None, source: Source,
                       judge: Judge | None) -> str | None:
    """Why the explorer cannot judge this row (None: it can)."""
    if row is None or row.get("kind") != "llm" or _duplicate(row):
        return _NOT_A_CALL
    if judge is None:
        return "made without a judge: use llmtrace_nb.explore()"
    if source is not None or _current.current() is None:
        # a judgement is recorded beside the call, in the live session that has it
        return "judgements are recorded in the live session: explore() without a source"
    return None


def explore(source: Source = None, *, auto_refresh: bool = False,
            max_rows: int = MAX_TABLE_ROWS, judge: Judge | None = None) -> Explorer:
    """A dashboard over the collected spans: filters, linked charts, table, span detail.

    ``source`` defaults to the live session (``spans_df()``); a DataFrame (e.g. from a
    saved file) or a function returning one also works. ``auto_refresh`` polls the
    collector twice a second while the dashboard is open (live session only).
    """
    return Explorer(source, auto_refresh=auto_refresh, max_rows=max_rows, judge=judge)


# -- the per-cell trace widget ----------------------------------------------------------------


def _duplicate(span: Mapping[str, Any]) -> bool:
    """A span that describes a call another span counts (calls.py)."""
    value = span.get("duplicate_of")
    return not is_missing(value) and bool(value)


def _key_number(span: Mapping[str, Any]) -> str:
    if span.get("status") == "error":
        return f"✕ {span.get('error_type') or 'error'}"
    if _duplicate(span):
        return "same call"
    total = span_tokens(span)
    if span.get("kind") in PRICED_KINDS and total is not None:
        return (f"{format_count(total)} tok · "
                f"{format_cost(number(span.get('cost_usd')))}")
    return format_duration(number(span.get("duration_ms")))


def _span_option(span: Mapping[str, Any]) -> str:
    depth = min(int(number(span.get("depth")) or 0), 12)
    name = charts.row_name(span)
    name = name if len(name) <= 60 else name[:59] + "…"
    return f"{chr(0xA0) * 2 * depth}{name} · {span.get('kind') or 'other'} · {_key_number(span)}"


def _default_span(spans: Sequence[Mapping[str, Any]]) -> int | None:
    """What to show first: the first error, else the first LLM call, else the root."""
    for wanted in (lambda s: s.get("status") == "error",
                   lambda s: s.get("kind") in PRICED_KINDS):
        for i, span in enumerate(spans):
            if wanted(span):
                return i
    return 0 if spans else None


class TraceWidget(widgets.VBox):
    """One cell's trace: header, waterfall (click a bar), span selector and detail.

    What ``TraceView.widget()`` returns. It shows first the first error, else the first
    LLM call, else the root span. ``header``, ``figure`` (a plotly ``FigureWidget``),
    ``selector`` and ``detail`` are its parts.

    Parameters
    ----------
    document : Mapping
        The cell's trace document.

    Examples
    --------
    >>> w = llmtrace_nb.view().widget()  # doctest: +SKIP
    >>> w.select("5f2b8e1c9a3d4e6f")  # doctest: +SKIP
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        super().__init__()
        self.document = document
        self.spans = [s for s in document.get("spans") or [] if isinstance(s, Mapping)]
        lines = summary(document).splitlines() if "totals" in document else [
            str(document.get("name") or "trace")]
        self.header = widgets.HTML(
            _box(f'<div class="lt-title">{escape(lines[0])}</div>' + "".join(
                f'<div class="lt-muted">{escape(x.strip())}</div>' for x in lines[1:])))
        self.figure = go.FigureWidget(charts.waterfall(document))
        for trace in self.figure.data:
            trace.on_click(self._on_bar)
        self.selector = widgets.Dropdown(
            description="span", options=[(_span_option(s), i) for i, s in
                                         enumerate(self.spans)],
            value=None, style={"description_width": "initial"},
            layout=widgets.Layout(width="640px"))
        self.detail = widgets.HTML()
        self.selector.observe(self._on_select, names="value")
        self.children = [self.header, self.figure, self.selector, self.detail]
        self.select(_default_span(self.spans))

    def select(self, span: int | str | None) -> None:
        """Show a span's detail, by index in the document or by span id.

        Parameters
        ----------
        span : int, str or None
            The span's index in the document's ``spans``, or its span id; ``None`` or
            a span not in the trace clears the detail.

        Returns
        -------
        None
        """
        index = span
        if isinstance(span, str):
            index = next((i for i, s in enumerate(self.spans) if s.get("span_id") == span),
                         None)
        if not isinstance(index, int) or not 0 <= index < len(self.spans):
            index = None
        if index is not None:
            self.detail.value = span_detail_html(self.spans[index])
        elif self.spans:
            self.detail.value = span_detail_html(None)
        else:
            self.detail.value = _box("no spans in this trace", "lt-muted")

        if self.selector.value != index:
            self.selector.value = index

    def _on_select(self, change: Mapping[str, Any]) -> None:
        if change["new"] is not None:
            self.select(change["new"])

    def _on_bar(self, trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            self.select(int(trace.customdata[points.point_inds[0]]))


def trace_widget(doc: Any) -> TraceWidget:
    """An interactive view of one cell's trace (a document or a ``TraceView``)."""
    return TraceWidget(charts.as_document(doc))
