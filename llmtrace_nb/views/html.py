"""The static HTML view of a trace document: the ``text/html`` twin of the trace view.

It is what VS Code, Colab, nbviewer, GitHub and ``nbconvert --to html`` show, so it is a
self-contained fragment: one scoped ``<style>``, no script, no event handler, no external
resource; expansion through ``<details>`` only. Colors follow JupyterLab's ``--jp-*``
variables (then VS Code's ``--vscode-*``), so the view follows the notebook's theme; where
neither exists, text inherits the page's color and neutrals are translucent, so it reads
on a light or a dark page alike.

GitHub strips the style sheet and every ``style``, ``class`` and ``id``: the view's data is
therefore a plain ``<table>`` with a text bar per row, readable without any CSS, and the
style sheet only lays those cells out as the waterfall (see ``_CSS``).

Everything in the document is untrusted (span names, messages, attributes, the cell
name): every string is escaped once with ``html.escape(quote=True)`` and goes only into
text or an escaped ``title=`` / ``data-m=``. ``style=`` values are computed from numbers
validated as finite; class names come from fixed tables, never from the document.

The size of the output is bounded like the document's: the first rows that fit, then the
detail of spans (messages, attributes), errors and LLM / tool calls first, while a byte
budget lasts; the rest say "details omitted to keep the notebook small".
"""

from __future__ import annotations

import functools
import html as _html
import math
import uuid
from collections.abc import Mapping
from typing import Any

from .._read.semconv import CALL_KINDS, PRICED_KINDS
from .._read.values import JSON_ERRORS, json_text, to_float
from .._shape.document import TRUNCATION_MARKER, VERSION, clean_text
from .text import (
    eviction_note,
    format_cost,
    format_count,
    format_duration,
    model_or_tool,
    name_label,
    plural,
    top_call_lines,
)

#: One color per span kind. The JupyterLab renderer (labextension/) and the plotly charts
#: (views/charts.py) use the same colors: change them together. Tableau 10 tones: they read
#: on light and dark backgrounds without a second palette.
KIND_COLORS: dict[str, str] = {
    "llm": "#4E79A7",
    "embedding": "#76B7B2",
    "tool": "#F28E2B",
    "retrieval": "#59A14F",
    "agent": "#B07AA1",
    "chain": "#9C755F",
    "cell": "#BAB0AC",
    "other": "#FF9DA7",
}
ERROR_COLOR = "#D62728"
#: the part of a streamed call's bar before the first token: its kind color mixed with this
#: much white (as in the plotly waterfall); opaque, so it is lighter on dark pages too
WAIT_LIGHTEN = 0.55

#: the HTML aims to stay under this many bytes (it is saved in the notebook next to
#: the document, which has its own bound); rows always fit, detail fills what is left
SIZE_TARGET = 2_700_000
#: characters of detail (messages, attributes) allowed however many rows there are, and
#: at most: the document keeps all of it for the JupyterLab renderer; this twin, saved next
#: to it, need not double a notebook's size
MIN_DETAIL = 50_000
DETAIL_TARGET = 1_500_000
#: characters outside the rows (style, header, axis, legend, footer), and a row's own tags
OVERHEAD = 12_000
ROW_TAGS = 64
#: a hand-made document may hold texts of any length; the view cuts them here
MAX_TEXT = 20_000
#: names and kinds in a row are one line; longer ones are cut (the title= has the rest)
MAX_NAME = 300
#: deeper spans are drawn at this indentation, so names keep some room
MAX_INDENT = 16
#: past this many rows the waterfall scrolls inside the output
SCROLL_ROWS = 40
#: a compact twin (``%llmtrace output compact``, the default) details this many spans,
#: calls first, and every error; the rest are one row each (the document keeps them all)
COMPACT_DETAILS = 10


# -- untrusted values -----------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(n=len(text) - limit)


def _str(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A document string, bounded; None for anything that is not a string."""
    return _cut(value, limit) if isinstance(value, str) else None


def _bytes(text: str) -> int:
    """Bytes in the notebook (block characters and no-break spaces take 2 or 3)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _esc(value: str) -> str:
    # line breaks as references: nbconvert --to markdown embeds this HTML as it is, and a
    # blank line in a message would end the HTML block there (the rest read as Markdown)
    text = _html.escape(value, quote=True)
    if "\n" in text or "\r" in text:
        text = text.replace("\r", "&#13;").replace("\n", "&#10;")
    return text


def _short(value: str) -> str:
    """A name-like text (span name, model, key), cut and escaped; they repeat a lot."""
    # cut before the cache, so it never holds a huge string
    return _short_cached(value if len(value) <= MAX_NAME else _cut(value, MAX_NAME))


@functools.lru_cache(maxsize=8192)
def _short_cached(value: str) -> str:
    return _esc(value)


def _value(value: Any) -> str:
    """An attribute value as escaped text; small numbers and flags repeat, so cached."""
    if isinstance(value, (bool, int)) and -10**6 < value < 10**6:
        return _short_value(value)
    return _esc(_shown_text(value))


@functools.lru_cache(maxsize=4096, typed=True)  # True and 1 must not share an entry
def _short_value(value: bool | int) -> str:
    return _esc(_shown_text(value))


def _num(value: Any) -> float | None:
    """A finite number, or None: only these may reach a style= value or a format (the
    document's numbers are JSON numbers: numeric text is no number here)."""
    return None if isinstance(value, str) else to_float(value)


def _count(value: Any) -> int | None:
    f = _num(value)
    return int(f) if f is not None else None


def _shown_text(value: Any) -> str:
    """Any attribute value as text to show: strings as they are, flags and numbers as
    JSON writes them (no NaN), structures as JSON; all cut to ``MAX_TEXT``."""
    if isinstance(value, str):
        return _cut(value, MAX_TEXT)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if _num(value) is not None else "–"  # never NaN on screen
    try:
        return _cut(json_text(value, allow_nan=False), MAX_TEXT)
    except JSON_ERRORS:  # cycles, absurd nesting, NaN inside
        return "[value not shown]"


def _depth(span: Mapping[str, Any]) -> int:
    """The span's indentation level, bounded (``MAX_INDENT``)."""
    return min(MAX_INDENT, max(0, _count(span.get("depth")) or 0))


def _kind(span: Mapping[str, Any]) -> str:
    """The kind's class key: only kinds of the fixed table, never a document string."""
    kind = span.get("kind")
    return kind if isinstance(kind, str) and kind in KIND_COLORS else "other"


# -- the time axis ------------------------------------------------------------------------


def _nice_step(span_ms: float, ticks: int = 6) -> float:
    """A 1-2-5 step giving about ``ticks`` intervals over ``span_ms``."""
    raw = span_ms / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * magnitude >= raw * 0.999:
            return m * magnitude
    return 10 * magnitude


def _tick_label(ms: float, step: float, seconds: bool) -> str:
    value, unit_step = (ms / 1000, step / 1000) if seconds else (ms, step)
    decimals = max(0, -math.floor(math.log10(unit_step) + 1e-9))
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {'s' if seconds else 'ms'}"


class _Axis:
    """The shared time axis: from 0 to a whole number of nice steps past the last end."""

    def __init__(self, end_ms: float) -> None:
        # an empty cell still gets an axis; absurd ends (1e308 + 1e308) must not overflow
        # and so must tiny ones (5e-324 / 6 is 0): the axis is at least a microsecond
        end_ms = min(max(end_ms, 1e-3), 1e15) if end_ms > 0 else 1.0
        self.step = _nice_step(end_ms)
        self.intervals = max(1, math.ceil(end_ms / self.step - 1e-9))
        self.end = self.step * self.intervals
        self.scale = 100.0 / self.end

    def ticks(self) -> list[tuple[float, str]]:
        seconds = self.end >= 1000
        return [(i * 100.0 / self.intervals, _tick_label(i * self.step, self.step, seconds))
                for i in range(self.intervals + 1)]


def _axis_end(spans: list[Mapping[str, Any]], totals: Mapping[str, Any]) -> float:
    end = _num(totals.get("duration_ms")) or 0.0
    for s in spans:
        start, dur = _num(s.get("start_ms")) or 0.0, _num(s.get("duration_ms")) or 0.0
        end = max(end, start + dur)
    return end


# -- style --------------------------------------------------------------------------------

# "#R" is replaced by the root's unique id: every rule is scoped to one view, and an id
# outranks the host's class rules (JupyterLab styles tables, VS Code styles details).
#
# The waterfall is a real <table> (span, kind, model / tool, tokens, cost, duration, start,
# timeline) so that it still reads where every style is stripped (GitHub drops <style>,
# style=, class= and id=): each row's timeline cell then shows a text bar of block
# characters. Styled, each row is a grid: the first cell (the span's <details>) spans the
# row, its <summary> is the click target under the other cells (pointer-events: none), and
# the body opens below at full width; the model and start cells and the text bar give way
# to a muted label, the drawn bar and the axis.
_CSS = """
#R{--lt-fg:var(--jp-content-font-color1,var(--vscode-editor-foreground));
--lt-muted:var(--jp-content-font-color2,var(--vscode-descriptionForeground,
color-mix(in srgb,currentColor 64%,transparent)));
--lt-line:var(--jp-border-color2,rgba(128,128,128,.28));
--lt-grid:var(--jp-border-color3,rgba(128,128,128,.16));
--lt-soft:var(--jp-layout-color2,rgba(128,128,128,.10));
--lt-hover:rgba(128,128,128,.10);--lt-err:var(--jp-error-color1,#cf222e);
font-family:var(--jp-ui-font-family,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);
font-size:12px;line-height:1.5;color:var(--lt-fg);text-align:left;
margin:4px 0;max-width:100%;overflow:hidden}
#R *{box-sizing:border-box}
#R .hd{margin:0 0 6px;font-size:13px;font-variant-numeric:tabular-nums;
overflow-wrap:anywhere}
#R .er{color:var(--lt-err);font-weight:600}
#R .ev{font-style:normal;font-size:11px;margin-left:4px;padding:0 3px;border-radius:3px;
border:1px solid currentColor;color:var(--jp-success-color1,#1a7f37)}
#R .ev.ng{color:var(--lt-err)}
#R .ok{color:var(--jp-success-color1,#1a7f37)}
#R .nt{margin:4px 0;padding:3px 8px;border-left:3px solid var(--lt-line);
color:var(--lt-muted)}
#R .tp{margin:0 0 6px;color:var(--lt-muted);font-size:11px}
#R .tp>summary{cursor:pointer}
#R .tp>div{padding-left:1.2em;font-variant-numeric:tabular-nums}
#R .wf{display:block;width:100%;margin:0;border:none;border-collapse:separate;
border-spacing:0;table-layout:auto;font-size:inherit}
#R .wf>*{display:block}
#R .wf>*>tr,#R @S{display:grid;grid-template-columns:COLS;column-gap:12px;
align-items:center;background:transparent}
#R .wf>*>tr>*{padding:0;border:none;text-align:left;vertical-align:middle;line-height:inherit;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis;min-width:0;max-width:none;
font-weight:normal;background:transparent}
#R .wf>*>tr>:nth-child(3),#R .wf>*>tr>:nth-child(7),#R .wf>*>tr>:nth-child(8)>code,
#R .wf>thead>tr>:nth-child(8)>span{display:none}
#R .wf>*>tr>:nth-child(2){grid-area:1/2}
#R .wf>*>tr>:nth-child(4){grid-area:1/3;text-align:right}
#R .wf>*>tr>:nth-child(5){grid-area:1/4;text-align:right}
#R .wf>*>tr>:nth-child(6){grid-area:1/5;text-align:right}
#R .wf>*>tr>:nth-child(8){grid-area:1/6;overflow:visible;position:relative}
#R .wf>thead>tr{border-bottom:1px solid var(--lt-line);color:var(--lt-muted);font-size:11px;
padding:0 4px 2px;scrollbar-gutter:stable}
#R .wf>thead>tr>:nth-child(8){height:1.5em}
#R .tk{position:absolute;top:0;transform:translateX(-50%);font-style:normal;
white-space:nowrap;font-variant-numeric:tabular-nums}
#R .tk::before{content:attr(data-t)}
#R .tk.f{transform:none}#R .tk.l{transform:translateX(-100%)}
#R .wf>tbody{scrollbar-gutter:stable}
#R.sc .wf>tbody{max-height:36em;overflow-y:auto}
#R .wf>tbody>tr{border-bottom:1px solid var(--lt-grid);content-visibility:auto;
contain-intrinsic-size:auto 24px;padding:0}
#R .wf>tbody>tr>:first-child{grid-area:1/1/2/-1;overflow:visible;white-space:normal}
#R .wf>tbody>tr>:not(:first-child){grid-row:1;align-self:start;height:23px;line-height:23px;
pointer-events:none;font-variant-numeric:tabular-nums}
#R .wf>tbody>tr>:nth-child(8){display:flex;align-items:center}
#R @S{list-style:none;cursor:pointer;padding:0 4px;min-height:23px}
#R @S::-webkit-details-marker{display:none}
#R @S:hover{background:var(--lt-hover)}
#R @S:focus-visible{outline:1px solid var(--c);outline-offset:-1px}
#R @S>span{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#R @S>span::before{content:"\\25B8";display:inline-block;width:1.2em;
color:var(--lt-muted)}
#R td>[open]>summary>span::before{content:"\\25BE"}
#R @S [data-m]::after{content:attr(data-m);margin-left:6px;color:var(--lt-muted)}
#R @S small{font-size:inherit;margin-left:6px}
#R .e>td>details>summary>span{color:var(--lt-err)}
#R .e small{font-weight:600}
#R .wf>tbody>tr>:nth-child(2){justify-self:start;max-width:100%;height:18px;margin-top:2.5px;
font-size:10.5px;line-height:16px;padding:0 6px;border-radius:8px;border:1px solid var(--c)}
#R @S::after{content:"";grid-area:1/6;align-self:stretch;
background:linear-gradient(90deg,var(--lt-grid) 1px,transparent 1px) 0 0/GRID 100% repeat-x}
#R tr>td>i{height:11px;min-width:2px;margin-left:var(--l);width:var(--w);border-radius:2px;
background:var(--c)}
#R tr>td>i.s{background:linear-gradient(90deg,var(--cw) 0 var(--t),var(--c) var(--t))}
#R tr>td>i.o{background:repeating-linear-gradient(135deg,var(--c) 0 4px,var(--cw) 4px 8px)}
#R @S+div{margin:2px 4px 8px;padding:6px 10px;border-left:3px solid var(--c);
background:var(--lt-soft);border-radius:0 4px 4px 0;overflow-wrap:anywhere;
font-variant-numeric:tabular-nums}
#R @S+div>b{font-weight:600}
#R @S+div.o::after{content:"details omitted to keep the notebook small";
display:block;color:var(--lt-muted);font-style:italic}
#R .ms{margin-top:6px;display:grid;grid-template-columns:max-content 1fr;gap:3px 12px}
#R .ms>div{display:contents}
#R .ro{color:var(--lt-muted);font-weight:600;font-size:11px;padding-top:1px}
#R .tx{white-space:pre-wrap;overflow-wrap:anywhere;min-width:0}
#R .tx .nm{color:var(--lt-muted)}
#R .tc{display:block;font-family:var(--jp-code-font-family,ui-monospace,SFMono-Regular,
Menlo,Consolas,monospace);font-size:11px;white-space:pre-wrap}
#R .none{color:var(--lt-muted);font-style:italic}
#R .at{margin-top:6px}
#R .at>summary{display:block;color:var(--lt-muted);cursor:pointer}
#R .at>summary::-webkit-details-marker{display:none}
#R .at>summary::before{content:"\\25B8  "}#R .at[open]>summary::before{content:"\\25BE  "}
#R .at table{border-collapse:collapse;margin:4px 0 0;width:100%;table-layout:fixed;
font-size:11px;border:none}
#R .at tr,#R .at tr:nth-child(odd),#R .at tr:hover{background:transparent}
#R .at th,#R .at td{text-align:left;vertical-align:top;padding:2px 8px 2px 0;border:none;
border-top:1px solid var(--lt-grid);white-space:pre-wrap;overflow-wrap:anywhere;
max-width:none}
#R .at th{width:34%;font-weight:normal;color:var(--lt-muted)}
#R .at td{font-family:var(--jp-code-font-family,ui-monospace,SFMono-Regular,Menlo,Consolas,
monospace)}
#R .lg{display:flex;flex-wrap:wrap;gap:2px 14px;margin-top:6px;color:var(--lt-muted);
font-size:11px}
#R .sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;
vertical-align:-1px;background:var(--c)}
#R .sw.s{background:var(--cw)}
#R .ft{margin-top:4px;color:var(--lt-muted);font-size:11px}
@media (prefers-color-scheme:dark){#R{--lt-err:var(--jp-error-color1,#ff6b6b)}}
body.vscode-dark #R,[data-jp-theme-light="false"] #R{--lt-err:var(--jp-error-color1,#ff6b6b)}
"""

#: name (and model label) | kind | tokens | cost | duration | bar, when styled
_COLUMNS = "minmax(9em,30%) 6.5em 4em 6.5em 4.5em 1fr"
#: a row's <summary>, by position rather than by class: a 10k-span view has 10k of them
_ROW_SUMMARY = "td>details>summary"  # (the attributes' <details> is in a <div>)


def lighten(color: str, amount: float = WAIT_LIGHTEN) -> str:
    """``#rrggbb`` mixed with white: the lighter part of a bar (the wait before a token),
    here and in the plotly waterfall."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in (r, g, b))


def _kind_rules(root: str) -> str:
    rules = [f"{root} .k-{k}{{--c:{c};--cw:{lighten(c)}}}"
             for k, c in KIND_COLORS.items()]
    rules.append(f"{root} .e{{--c:{ERROR_COLOR};--cw:{lighten(ERROR_COLOR)}}}")
    return "".join(rules)


def _depth_rules(root: str, depths: set[int]) -> str:
    # one rule per depth present, rather than a style= on each of 10k rows (the name is
    # indented by its text, see _INDENT)
    row = f"{root} .d{{}}>td>details>summary+div"
    return "".join(f"{row.format(d)}{{margin-left:{d * 14 + 4}px}}"
                     for d in sorted(depths) if d)


def _style(root_id: str, axis: _Axis, depths: set[int]) -> str:
    root = f"#{root_id}"
    grid = f"{100.0 / axis.intervals:.4f}%"
    # the lines of _CSS only break between declarations and rules: a saved byte each
    css = (_CSS.replace("\n", "").replace("#R", root).replace("GRID", grid)
           .replace("COLS", _COLUMNS).replace("@S", _ROW_SUMMARY))
    return f"<style>{css}{_kind_rules(root)}{_depth_rules(root, depths)}</style>"


# -- header, axis, legend, footer ---------------------------------------------------------


def _title(doc: Mapping[str, Any]) -> str:
    name = _str(doc.get("name"), MAX_NAME) or "trace"
    cell = _count(doc.get("cell"))
    return f"cell [{cell}] {name}" if cell is not None else name


def _header(doc: Mapping[str, Any], totals: Mapping[str, Any]) -> str:
    """One line that reads the same styled, stripped or as raw HTML (nbconvert --to
    markdown embeds this view as it is)."""
    calls = _count(totals.get("llm_calls")) or 0
    tin = _count(totals.get("input_tokens")) or 0
    tout = _count(totals.get("output_tokens")) or 0
    total = _count(totals.get("total_tokens"))
    total = tin + tout if total is None else total
    cached = _count(totals.get("cache_read_tokens")) or 0
    split = f"{tin:,} in · {tout:,} out" + (f" · {cached:,} cached" if cached else "")
    parts = [f"<b>{_esc(_title(doc))}</b>",
             format_duration(_num(totals.get("duration_ms"))),
             plural(calls, "LLM call"),
             f"{total:,} tokens ({split})",
             _esc(_header_cost(totals))]
    errors = _count(totals.get("errors")) or 0
    if errors:
        parts.append(f'<span class="er">{plural(errors, "error")}</span>')
    judged = [e for s in doc.get("spans") or () if isinstance(s, Mapping)
              for e in _evaluations(s)]
    if judged:
        negative = sum(1 for e in judged if e.get("negative") is True)
        parts.append(plural(len(judged), "judgement") + (
            f', <span class="er">{negative} negative</span>' if negative else ""))
    return f'<div class="hd">{" · ".join(parts)}</div>\n'


def _top_calls(doc: Mapping[str, Any]) -> str:
    """The costliest and the slowest calls, one per line, as the text summary lists them:
    read raw (nbconvert --to markdown, a diff) or stripped, where a long table is not."""
    lines = top_call_lines(doc)
    if len(lines) < 3:  # one call: its row says it all
        return ""
    body = "".join(f"<div>{_esc(line.strip())}</div>\n" for line in lines)
    return f'<details class="tp"><summary>costliest and slowest calls</summary>\n{body}</details>\n'


def _header_cost(totals: Mapping[str, Any]) -> str:
    cost = _num(totals.get("cost_usd"))
    unpriced = _unpriced(totals)
    if cost is not None and unpriced:
        return f"{format_cost(cost)} + no price for {plural(len(unpriced), 'model')}"
    return format_cost(cost)


def _unpriced(totals: Mapping[str, Any]) -> list[str]:
    models = totals.get("unpriced_models")
    if not isinstance(models, list):
        return []
    return [m for m in (_str(x, MAX_NAME) for x in models) if m]


#: characters of a row's text bar: the timeline where styles are stripped
TEXT_BAR = 24
_EIGHTHS = " ▏▎▍▌▋▊▉"
_PAD = "\u00a0"  # not a space: runs of spaces collapse where no style keeps them


def _thead(axis: _Axis) -> str:
    """The column heads; the timeline's says its scale in words (stripped) and carries
    the tick labels as data for the style sheet, which alone shows them."""
    ticks = axis.ticks()
    out = []
    for i, (pos, label) in enumerate(ticks):
        cls = "tk f" if i == 0 else ("tk l" if i == len(ticks) - 1 else "tk")
        out.append(f'<i class="{cls}" style="left:{pos:.3f}%" data-t="{label}"></i>')
    per_char = axis.end / TEXT_BAR  # 3 significant digits: a reader measures bars with it
    char = f"{per_char:.3g} ms" if per_char < 1000 else f"{per_char / 1000:.3g} s"
    scale = f"0 – {ticks[-1][1]}, one █ = {char}"
    return ("<thead><tr><th>span</th><th>kind</th><th>model / tool</th><th>tokens</th>"
            "<th>cost</th><th>duration</th><th>start</th>"
            f"<th><span>timeline {scale}</span>{''.join(out)}</th></tr></thead>\n")


def _legend(kinds: set[str], errors: bool, streamed: bool) -> str:
    items = [f'<span class="k-{k}"><span class="sw"></span>{k}</span>'
             for k in KIND_COLORS if k in kinds]
    if errors:
        items.append('<span class="e"><span class="sw"></span>error</span>')
    if streamed:
        items.append('<span class="k-llm"><span class="sw s"></span>'
                     "waiting for the first token (░)</span>")
    return f'<div class="lg">{" ".join(items)}</div>\n'


def _footer(doc: Mapping[str, Any], totals: Mapping[str, Any], omitted_detail: int,
            compacted: int = 0, unlisted: int = 0) -> str:
    lines = []
    if unlisted:
        lines.append(f"the last {plural(unlisted, 'span')} of this cell are not listed in "
                     "this static view, to keep the notebook small: their totals are in the "
                     "header, and the JupyterLab view lists them")
    omitted = doc.get("omitted")
    if isinstance(omitted, Mapping):
        n = _count(omitted.get("spans")) or 0
        lines.append(f"{n:,} more span{'' if n == 1 else 's'} not shown — "
                     "their totals are in the header")
    if doc.get("open") is True:
        running = _count(doc.get("open_spans"))
        verb = "was" if running == 1 else "were"
        lines.append(f"{plural(running, 'span')} {verb} still running when this view was made"
                     if running else "some spans were still running when this view was made")
    evicted = doc.get("evicted")
    if isinstance(evicted, Mapping) and _count(evicted.get("spans")):
        lines.append(_esc(eviction_note(evicted)))
    same = _count(totals.get("same_call_spans"))
    if same:
        lines.append(f"{plural(same, 'span')} marked “same call” describe a call another "
                     "span counts (a framework's span and the client's): counted once")
    unpriced = _unpriced(totals)
    if unpriced:
        lines.append(f"no price for: {_esc(', '.join(unpriced))} "
                     "(set one with %llmtrace price)")
    if omitted_detail:
        lines.append(f"details of {plural(omitted_detail, 'span')} omitted to keep the "
                     "notebook small")
    if compacted:
        lines.append(f"compact output: messages and attributes of {plural(compacted, 'span')} "
                     f"are not in this static view (the first {COMPACT_DETAILS} calls and "
                     "every error are); the JupyterLab view has them, and "
                     "%llmtrace output full keeps them here")
    return "".join(f'<div class="ft">{line}</div>\n' for line in lines)


# -- rows ---------------------------------------------------------------------------------


class _Row:
    """The numbers and short texts of one span, validated and escaped once."""

    __slots__ = ("cost", "duplicate", "dur", "error", "kind", "label", "model", "name",
                 "start", "tin", "total", "tout", "ttft", "wait")

    def __init__(self, span: Mapping[str, Any]) -> None:
        self.kind = _kind(span)
        self.error = span.get("status") == "error"
        name = span.get("name")
        self.name = _short(name) if isinstance(name, str) and name else "(unnamed span)"
        label = name_label(span)
        # styled, beside the name (data-m): the model / tool cell is hidden then
        self.label = _short(label) if label else None
        model = model_or_tool(span)
        self.model = _short(model) if model else ""  # the model / tool cell
        self.start = max(0.0, _num(span.get("start_ms")) or 0.0)
        self.dur = _num(span.get("duration_ms"))
        self.ttft = _num(span.get("ttft_ms"))
        #: the share of the duration spent before the first token (both bars draw it)
        self.wait = (min(1.0, self.ttft / self.dur) if self.ttft is not None and self.ttft > 0
                     and self.dur is not None and self.dur > 0 else None)
        self.cost = _num(span.get("cost_usd"))
        self.tin, self.tout = _count(span.get("input_tokens")), _count(span.get("output_tokens"))
        total = _count(span.get("total_tokens"))
        if total is None and (self.tin is not None or self.tout is not None):
            total = (self.tin or 0) + (self.tout or 0)  # the document leaves it out
        self.total = total
        self.duplicate = isinstance(span.get("duplicate_of"), str)


def _cells(span: Mapping[str, Any], row: _Row) -> str:
    """The row's cells after the span's: kind, model / tool, tokens, cost, duration, start."""
    kind = span.get("kind")
    kind_text = _short(kind) if isinstance(kind, str) and kind else "other"
    tokens = cost = ""
    if row.duplicate:
        tokens = "same call"  # counted once, on the row it names
    elif row.kind in PRICED_KINDS and (row.total is not None or row.cost is not None):
        tokens = f"{row.total:,}" if row.total is not None else ""
        cost = format_cost(row.cost) if row.total else ""  # no usage → nothing to price
    duration = format_duration(row.dur) if row.dur is not None else "running"
    start = format_duration(row.start)
    # a no-break space before the unit: stripped of styles, a narrow cell would wrap it
    return (f"<td>{kind_text}</td><td>{row.model}</td><td>{tokens}</td><td>{cost}</td>"
            f"<td>{duration.replace(' ', _PAD)}</td><td>{start.replace(' ', _PAD)}</td>")


def _pct(value: float) -> str:
    """A percentage, short: 1 decimal (a pixel in a wide output) without a trailing zero
    (10k rows carry several)."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _bar(row: _Row, axis: _Axis) -> str:
    """The drawn bar (numbers only in its style=, all finite, checked by _Row), then the
    text bar: the same place on the axis in block characters, which no sanitizer strips."""
    left = min(100.0, row.start * axis.scale)
    if row.dur is None:  # still running: from its start to the end of the axis, hatched
        drawn = f'<i class=o style="--l:{_pct(left)};--w:{_pct(100 - left)}"></i>'
    else:
        width = min(100.0 - left, max(0.0, row.dur) * axis.scale)
        style = f"--l:{_pct(left)};--w:{_pct(width)}"
        if row.wait is not None:
            drawn = f'<i class=s style="{style};--t:{_pct(row.wait * 100)}"></i>'
        else:
            drawn = f'<i style="{style}"></i>'
    return f"{drawn}<code>{_text_bar(row, axis)}</code>"


def _text_bar(row: _Row, axis: _Axis) -> str:
    """Padding to the span's start, then its duration in eighths of a character (at least
    one): ``░`` for the wait before a streamed call's first token, ``█▌`` for the rest, ``▒``
    to the end of the axis while it runs. Its length is proportional to the duration; its
    start is rounded down to a whole character."""
    at = min(TEXT_BAR - 1, int(row.start * axis.scale * TEXT_BAR / 100))
    if row.dur is None:
        return _PAD * at + "▒" * (TEXT_BAR - at)
    room = 8 * (TEXT_BAR - at)  # a duration past the axis (a hand-made one) stops at its end
    eighths = max(1, round(min(room, max(0.0, row.dur) * axis.scale * TEXT_BAR * 8 / 100)))
    wait = 0 if row.wait is None else round(eighths * row.wait) // 8
    rest = eighths - 8 * wait
    return _PAD * at + "░" * wait + "█" * (rest // 8) + _EIGHTHS[rest % 8].strip()


def _evaluations(span: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The span's judgements that can be read (a hand-edited document may hold anything)."""
    found = span.get("evaluations")
    if not isinstance(found, list):
        return []
    return [e for e in found if isinstance(e, Mapping) and isinstance(e.get("name"), str)]


def _evaluation_text(e: Mapping[str, Any]) -> str:
    """"exact_match 1 · pass (negative)", escaped."""
    score = _num(e.get("score"))
    label = e.get("label") if isinstance(e.get("label"), str) else None
    said = " · ".join(v for v in (None if score is None else f"{score:g}",
                                  None if label is None else _short(label)) if v)
    return f"{_short(e['name'])} {said}" + (" (negative)" if e.get("negative") is True
                                            else "")


def _badges(span: Mapping[str, Any]) -> str:
    """One badge per evaluation name (its latest judgement), after the span's name."""
    latest = {e["name"]: e for e in _evaluations(span)}
    return "".join(
        f' <i class="ev{" ng" if e.get("negative") is True else ""}">'
        f'{"✗" if e.get("negative") is True else "✓"} {_short(name)}</i>'
        for name, e in latest.items())


#: a name's indentation per level of depth: text, so that it survives stripped styles
_INDENT = "\u00a0" * 2


def _summary(span: Mapping[str, Any], row: _Row, depth: int) -> str:
    """The span's name, its error and judgements: the <summary> that opens its detail.
    Styled, the model or tool the name does not say follows it, muted (``data-m``)."""
    full = f"{row.name} · {row.label}" if row.label else row.name
    title = f' title="{full}"' if len(full) > 40 else ""  # the cell cuts it
    label = f' data-m="{row.label}"' if row.label else ""
    after = _badges(span)
    if row.error:
        error_type = span.get("error_type")
        after = " <small>✕ " + (_short(error_type) if isinstance(error_type, str)
                                else "error") + "</small>" + after
    indent = _INDENT * depth
    if not after:
        return f"<summary><span{title}{label}>{indent}{row.name}</span></summary>"
    # the name in a span of its own, so that the label follows it, not the badges
    name = f"<span{label}>{row.name}</span>" if label else row.name
    return f"<summary><span{title}>{indent}{name}{after}</span></summary>"


def _text_field(span: Mapping[str, Any], key: str) -> str | None:
    value = span.get(key)
    return _short(value) if isinstance(value, str) and value else None


def _meta(span: Mapping[str, Any], row: _Row, doc_trace: Any, short: bool = False) -> str:
    """model · provider · duration · TTFT · tokens (cached, reasoning) · cost · finish;
    ``short`` leaves out what the row's cells say (a compact row: bytes per call count)."""
    parts: list[str] = []
    if row.error:
        parts.append(f'<span class="er">error: {_text_field(span, "error_type") or "unknown"}'
                     "</span>")
    model = _text_field(span, "model")
    if model and not short:
        parts.append(f"<b>{model}</b>")
    requested = _text_field(span, "request_model")
    # a compact row leaves out the alias the model cell's snapshot names (gpt-4o-mini for
    # gpt-4o-mini-2024-07-18)
    if requested and requested != model and not (
            short and model is not None and model.startswith(requested)):
        parts.append(f"requested {requested}")
    provider = _text_field(span, "provider")
    if provider:
        parts.append(provider)
    if not short:
        parts.append(format_duration(row.dur) if row.dur is not None else "still running")
    if row.ttft is not None:
        parts.append(f"TTFT {format_duration(row.ttft)}")
    if row.total is not None:
        parts.append(_token_text(span, row, short))
    if not short and (row.cost is not None or (row.kind in PRICED_KINDS and row.total)):
        parts.append(format_cost(row.cost))
    finish = _text_field(span, "finish_reasons")
    if finish:
        parts.append(f"finish: {finish}")
    trace = span.get("trace_id")
    if isinstance(trace, str) and trace and trace != doc_trace:
        parts.append(f"trace {_short(trace)}")
    if row.duplicate:
        parts.append("the same call as another span here: counted once, there")
    for e in _evaluations(span):
        why = e.get("explanation")
        parts.append(f'<span class="{"er" if e.get("negative") is True else "ok"}">judged '
                     f"{_evaluation_text(e)}</span>"
                     + (f" — {_esc(_cut(why, MAX_TEXT))}" if isinstance(why, str) and why
                        else ""))
    return " · ".join(parts)


def _token_text(span: Mapping[str, Any], row: _Row, short: bool = False) -> str:
    inner = []
    if row.tin is not None or row.tout is not None:
        inner.append(f"{format_count(row.tin)} in / {format_count(row.tout)} out")
    for key, word in (("cache_read_tokens", "cached"), ("cache_write_tokens", "cache write"),
                      ("reasoning_tokens", "reasoning")):
        n = _count(span.get(key))
        if n:
            inner.append(f"{n:,} {word}")
    if short:  # the total is in the row's cell
        return ", ".join(inner)
    return f"{row.total:,} tokens" + (f" ({', '.join(inner)})" if inner else "")


def _turn(msg: Mapping[str, Any]) -> str:
    role = _text_field(msg, "role") or "unknown"
    body: list[str] = []
    name = _text_field(msg, "name")
    if name:
        body.append(f'<span class="nm">{name}: </span>')
    content = msg.get("content")
    if content is not None:
        body.append(_esc(_shown_text(content)))
    calls = msg.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, Mapping):
            call_name = _text_field(call, "name") or "tool"
            args = call.get("arguments")
            args_text = _esc(_shown_text(args)) if args is not None else ""
            body.append(f'<span class="tc">{call_name}({args_text})</span>')
    if not body:
        body.append('<span class="none">(no content)</span>')
    # a div per turn (display:contents when styled): without the style sheet (GitHub
    # strips it) each turn is still a line of its own
    return f'<div><span class="ro">{role}</span> <span class="tx">{"".join(body)}</span></div>'


def _messages(span: Mapping[str, Any]) -> str:
    turns = []
    for key in ("input_messages", "output_messages"):
        msgs = span.get(key)
        for msg in msgs if isinstance(msgs, list) else ():
            if isinstance(msg, Mapping):
                turns.append(_turn(msg))
    return f'<div class="ms">{"".join(turns)}</div>' if turns else ""


def _attributes(span: Mapping[str, Any]) -> str:
    attrs = span.get("attributes")
    if not isinstance(attrs, Mapping) or not attrs:
        return ""
    rows = [f"<tr><th>{_short(str(k))}</th><td>{_value(v)}</td></tr>"
            for k, v in attrs.items()]
    return (f'<details class="at"><summary>attributes ({len(rows):,})</summary>'
            f'<table>{"".join(rows)}</table></details>')


_TRUNCATED = ('<div class="nt">long texts are truncated here; the marker says how many '
              "characters were cut</div>")


def _detail_rank(spans: list[Mapping[str, Any]]) -> list[int]:
    """Which spans get their messages and attributes first when space is short."""
    def rank(i: int) -> tuple[bool, bool, int]:
        s = spans[i]
        return (s.get("status") != "error", s.get("kind") not in CALL_KINDS, i)

    return sorted(range(len(spans)), key=rank)


def _details(spans: list[Mapping[str, Any]], order: list[int], budget: int
             ) -> tuple[list[str | None], int]:
    """Messages and attributes of spans in ``order`` while the budget lasts.

    Returns the texts (None: omitted, which the row shows) and the characters used.
    """
    out: list[str | None] = [None] * len(spans)
    used = 0
    for i in order:
        span = spans[i]
        if span.get("detail") == "omitted":  # the document had no room for it either
            continue
        text = _messages(span) + _attributes(span)
        if span.get("truncated") is True:
            text = _TRUNCATED + text
        size = _bytes(text)
        if used + size > budget:  # the rest, lower in priority, go without
            break
        used += size
        out[i] = text
    return out, used


def _fit(metas: list[str], order: list[int], budget: int) -> None:
    """Drop the detail lines of the last spans in ``order`` until the rest fit the budget.

    Only a view of many thousand spans gets here; its rows stay, their lines go first.
    """
    excess = sum(map(_bytes, metas)) - budget
    for i in reversed(order):
        if excess <= 0:
            return
        excess -= _bytes(metas[i])
        metas[i] = ""


# -- the view -----------------------------------------------------------------------------


def _version_notice(doc: Mapping[str, Any]) -> str:
    version = doc.get("version")
    if version == VERSION:
        return ""
    shown = _esc(str(version)[:20]) if isinstance(version, (int, str)) else "unknown"
    return (f'<div class="nt">This trace document has version {shown}; this llmtrace_nb '
            f"reads version {VERSION}. Showing what it can.</div>")


def _has_detail(span: Mapping[str, Any]) -> bool:
    return bool(span.get("input_messages") or span.get("output_messages")
                or span.get("attributes") or span.get("detail") == "omitted")


def _compact(spans: list[Mapping[str, Any]], order: list[int]) -> list[int]:
    """Of ``order``, the spans a compact twin details: every error, and the first
    ``COMPACT_DETAILS`` others that have detail to show."""
    kept, others = [], 0
    for i in order:
        if spans[i].get("status") == "error":
            kept.append(i)
        elif others < COMPACT_DETAILS and _has_detail(spans[i]):
            kept.append(i)
            others += 1
    return kept


def _listed(sizes: list[int]) -> int:
    """How many rows, from the first, fit the size target with the least detail: a row is
    a table row of seven cells and two bars, and past some thousands they would not."""
    room = SIZE_TARGET - OVERHEAD - MIN_DETAIL
    for i, size in enumerate(sizes):
        room -= size + ROW_TAGS
        if room < 0:
            return i
    return len(sizes)


def _rows(doc: Mapping[str, Any], spans: list[Mapping[str, Any]], axis: _Axis,
          compact: bool) -> tuple[list[str], int, int, int]:
    """The rows, within the size target: the first rows that fit, then detail by priority.

    Also returns how many spans' detail the budget left out, how many compactness did,
    and how many spans are not listed at all."""
    doc_trace = doc.get("trace_id")
    parsed = [_Row(s) for s in spans]
    depths = [_depth(s) for s in spans]
    heads = [_summary(s, r, d) for s, r, d in zip(spans, parsed, depths, strict=True)]
    tails = [_cells(s, r) + f"<td>{_bar(r, axis)}</td>" for s, r in zip(spans, parsed,
                                                                            strict=True)]
    sizes = [_bytes(head) + _bytes(tail) for head, tail in zip(heads, tails, strict=True)]
    listed = _listed(sizes)
    unlisted = len(spans) - listed
    if unlisted:
        spans, parsed, depths = spans[:listed], parsed[:listed], depths[:listed]
        heads, tails = heads[:listed], tails[:listed]
    budget = SIZE_TARGET - OVERHEAD - sum(sizes[:listed]) - ROW_TAGS * len(spans)
    rank = _detail_rank(spans)
    order, left_out = rank, 0
    detailed = set(range(len(spans)))
    if compact:
        order = _compact(spans, rank)
        left_out = sum(map(_has_detail, spans)) - sum(_has_detail(spans[i]) for i in order)
        detailed = set(order)
    metas = [_meta(s, r, doc_trace, short=i not in detailed)
             for i, (s, r) in enumerate(zip(spans, parsed, strict=True))]
    details, used = _details(spans, order,
                             min(DETAIL_TARGET,
                                 max(MIN_DETAIL, budget - sum(map(_bytes, metas)))))
    if compact:  # a span with nothing to detail is not one whose detail was left out
        details = [d if d is not None or _has_detail(s) else "" for d, s in
                   zip(details, spans, strict=True)]
    _fit(metas, rank, budget - used)
    rows = []
    for row, depth, head, tail, meta, detail in zip(
            parsed, depths, heads, tails, metas, details, strict=True):
        cls = f"k-{row.kind}" + (f" d{depth}" if depth else "") + (" e" if row.error else "")
        body = "<div class=o>" if detail is None else "<div>"
        rows.append(f'<tr class="{cls}"><td><details>{head}{body}{meta}{detail or ""}'
                    f"</div></details></td>{tail}</tr>\n")
    budget_cut = sum(1 for i in order if details[i] is None)
    return rows, budget_cut, left_out, unlisted


def _render(doc: Mapping[str, Any], compact: bool) -> str:
    root_id = f"lt-{uuid.uuid4().hex[:12]}"
    raw_totals = doc.get("totals")
    totals: Mapping[str, Any] = raw_totals if isinstance(raw_totals, Mapping) else {}
    raw_spans = doc.get("spans")
    spans = [s for s in raw_spans if isinstance(s, Mapping)] if isinstance(
        raw_spans, list) else []
    axis = _Axis(_axis_end(spans, totals))
    depths = {_depth(s) for s in spans}
    rows, omitted_detail, compacted, unlisted = _rows(doc, spans, axis, compact)
    scroll = " sc" if len(spans) > SCROLL_ROWS else ""
    # the header first and the style sheet last: read raw (nbconvert --to markdown embeds
    # this HTML as it is, a diff shows it), the view starts with what it says
    parts = [f'<div class="llmtrace-view{scroll}" id="{root_id}">\n',
             _header(doc, totals), _version_notice(doc), _top_calls(doc)]
    if spans:
        parts += ['<table class="wf">', _thead(axis), "<tbody>\n", *rows, "</tbody></table>\n",
                  _legend({_kind(s) for s in spans}, any(s.get("status") == "error"
                                                         for s in spans),
                          any(_num(s.get("ttft_ms")) for s in spans))]
    else:
        parts.append('<div class="nt">no spans recorded in this cell</div>\n')
    parts += [_footer(doc, totals, omitted_detail, compacted, unlisted),
              _style(root_id, axis, depths),
              "</div>"]
    return "".join(parts)


def _failed(error: Exception) -> str:
    return ('<div class="llmtrace-view"><div>The trace view could not be drawn '
            f"({_esc(type(error).__name__)}); the trace document is still saved with the "
            "notebook.</div></div>")


def render(doc: Mapping[str, Any], output: str = "compact") -> str:
    """The self-contained static HTML of a trace document (the ``text/html`` twin);
    ``output`` "compact" details the first ``COMPACT_DETAILS`` spans and the errors,
    "full" every span the size target allows."""
    if not isinstance(doc, Mapping):
        return _failed(TypeError("not a trace document"))
    try:
        out = _render(doc, compact=output == "compact")
    except Exception as exc:  # a view must never break the cell that shows it
        return _failed(exc)
    # lone surrogates cannot be saved in a notebook; checking once is cheaper than per text
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        out = clean_text(out)
    return out
