"""Show: a comparison of runs (``_shape/compare.py``) as its display bundle — the data
under its own MIME type, a static HTML twin (inline CSS, no script, every text escaped)
and a text table."""

from __future__ import annotations

import html as _html
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .._shape import compare as _compare
from .text import format_cost, format_duration

MIME_TYPE = "application/vnd.llmtrace.compare+json"

#: how each metric is written
_LABELS = {"calls": "LLM calls", "errors": "errors", "input_tokens": "input tokens",
           "output_tokens": "output tokens", "cache_read_tokens": "cached tokens",
           "cost_usd": "cost", "wall_ms": "wall time", "latency_p50_ms": "latency p50",
           "latency_p95_ms": "latency p95", "ttft_p50_ms": "TTFT p50"}


def value_text(metric: str, value: float | None) -> str:
    if value is None:
        return "–" if metric != "cost_usd" else "no price"
    if metric == "cost_usd":
        return format_cost(value)
    if metric.endswith("_ms"):
        return format_duration(value)
    return f"{value:,.0f}"


def delta_text(metric: str, first: float | None, other: float | None) -> str:
    if first is None or other is None:
        return ""
    delta = other - first
    sign = "+" if delta > 0 else "−" if delta < 0 else "±"
    shown = value_text(metric, abs(delta)) if delta else "0"
    ratio = f" ({other / first:.2f}×)" if first else ""
    return f"{sign}{shown}{ratio}"


def _esc(text: Any) -> str:
    return _html.escape(str(text), quote=True)


def _table(labels: Sequence[str], rows: Sequence[tuple[str, Sequence[float | None]]]) -> str:
    head = "".join(f"<th>{_esc(label)}</th>" for label in labels)
    deltas = "".join(f"<th>Δ {_esc(label)}</th>" for label in labels[1:])
    out = [f"<table><thead><tr><th></th>{head}{deltas}</tr></thead><tbody>"]
    for metric, values in rows:
        cells = "".join(f"<td>{_esc(value_text(metric, v))}</td>" for v in values)
        changes = "".join(f"<td>{_esc(delta_text(metric, values[0], v))}</td>"
                          for v in values[1:])
        out.append(f"<tr><th>{_esc(_LABELS.get(metric, metric))}</th>{cells}{changes}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _diff_html(ops: Sequence[Sequence[str]]) -> str:
    out = []
    for op, words in ops:
        if op == "=":
            out.append(_esc(words))
        elif op == "-":
            out.append(f"<del>{_esc(words)}</del>")
        else:
            out.append(f"<ins>{_esc(words)}</ins>")
    return "".join(out)


def _call_line(call: Mapping[str, Any] | None) -> str:
    if call is None:
        return "(no call)"
    tokens = [call.get("input_tokens"), call.get("output_tokens")]
    said = [str(call.get("model") or call.get("name")),
            f"{tokens[0] or 0:,.0f} in · {tokens[1] or 0:,.0f} out" if any(
                t is not None for t in tokens) else "",
            format_cost(call.get("cost_usd")), format_duration(call.get("duration_ms"))]
    return " · ".join(s for s in said if s)


def _pair_title(pair: Mapping[str, Any]) -> str:
    """What a pair is: "call 3" in order, "openai.chat 2" when paired by span name."""
    if pair.get("name") is not None:
        return f"{pair['name']} {pair.get('nth', 1)}"
    return f"call {pair['index'] + 1}"


def _pairs_heading(data: Mapping[str, Any]) -> str:
    """The heading over the pairs: how they were paired."""
    return ("calls, paired by span name" if data.get("paired_by") == "name"
            else "calls, paired in order")


def _pairs_html(data: Mapping[str, Any]) -> str:
    labels = data["labels"]
    out = []
    for pair in data["pairs"]:
        calls = pair["calls"]
        lines = "".join(f"<div><b>{_esc(label)}</b>: {_esc(_call_line(call))}</div>"
                        for label, call in zip(labels, calls, strict=True))
        body = []
        first = calls[0]
        for i, (label, call) in enumerate(zip(labels, calls, strict=True)):
            if call is None or call.get("output") is None:
                continue
            if i == 0 or not pair.get("diffs") or pair["diffs"][i - 1] is None:
                text = _esc(call["output"])
            else:
                text = _diff_html(pair["diffs"][i - 1])
            body.append(f'<div class="out"><b>{_esc(label)}</b><pre>{text}</pre></div>')
        summary = _esc(_pair_title(pair)) + ": " + _esc(
            " vs ".join(str((c or {}).get("model") or "–") for c in calls))
        if first is not None:
            summary += " · " + " vs ".join(_esc(format_cost((c or {}).get("cost_usd")))
                                            for c in calls)
        out.append(f"<details><summary>{summary}</summary>{lines}{''.join(body)}</details>")
    if data.get("more_pairs"):
        out.append(f"<div class=\"nt\">{data['more_pairs']:,} more calls not paired here "
                   "(.frame has every total)</div>")
    return "".join(out)


def _judgement_row(label: str, j: Mapping[str, Any]) -> str:
    score = "" if j["mean_score"] is None else f"{j['mean_score']:.3g}"
    rate = "" if j["pass_rate"] is None else f"{100 * j['pass_rate']:.0f} %"
    return (f"<tr><td>{_esc(label)}</td><td>{_esc(j['name'])}</td><td>{j['count']:,}</td>"
            f"<td>{score}</td><td>{rate}</td></tr>")


def _judgements_html(data: Mapping[str, Any]) -> str:
    rows = "".join(_judgement_row(label, j) for label, side in
                   zip(data["labels"], data["judgements"], strict=True) for j in side)
    if not rows:
        return ""
    return ("<h4>judgements</h4><table><thead><tr><th>side</th><th>evaluation</th>"
            f"<th>count</th><th>mean score</th><th>pass rate</th></tr></thead><tbody>{rows}"
            "</tbody></table>")


_CSS = """
#R{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:12px;
line-height:1.5;text-align:left;margin:4px 0;max-width:100%;overflow:auto}
#R table{border-collapse:collapse;margin:4px 0 8px}
#R th,#R td{padding:2px 10px;border-bottom:1px solid rgba(128,128,128,.25);
text-align:right;font-variant-numeric:tabular-nums}
#R th:first-child{text-align:left}
#R h4{margin:8px 0 2px;font-size:12px}
#R pre{white-space:pre-wrap;margin:2px 0 6px;font-size:12px}
#R del{background:rgba(207,34,46,.15);text-decoration:line-through}
#R ins{background:rgba(26,127,55,.18);text-decoration:none}
#R .nt{color:rgba(128,128,128,1)}
"""


def render_html(data: Mapping[str, Any]) -> str:
    root = "lc-" + secrets.token_hex(4)
    labels = data["labels"]
    totals = _table(labels, [(m, [t[m] for t in data["totals"]]) for m in data["metrics"]])
    models = "".join(
        f"<h4>{_esc(entry['model'])}</h4>"
        + _table(labels, [(m, [s[m] for s in entry["sides"]]) for m in data["metrics"]
                          if m != "wall_ms"])
        for entry in data["models"])
    title = " vs ".join(_esc(label) for label in labels)
    return (f'<div id="{root}"><style>{_CSS.replace("#R", "#" + root)}</style>'
            f"<b>compare: {title}</b>{totals}{_judgements_html(data)}"
            f"<h4>per model</h4>{models}<h4>{_esc(_pairs_heading(data))}</h4>"
            f"{_pairs_html(data)}</div>")


def render_text(data: Mapping[str, Any]) -> str:
    labels = data["labels"]
    width = max(len(_LABELS[m]) for m in data["metrics"])
    columns = [max(12, len(label)) for label in labels]
    lines = ["compare: " + " vs ".join(labels),
             " " * width + "  " + "  ".join(label.rjust(w) for label, w in
                                            zip(labels, columns, strict=True))]
    for metric in data["metrics"]:
        values = [t[metric] for t in data["totals"]]
        cells = "  ".join(value_text(metric, v).rjust(w) for v, w in
                          zip(values, columns, strict=True))
        changes = "  ".join(delta_text(metric, values[0], v) for v in values[1:])
        lines.append(f"{_LABELS[metric].ljust(width)}  {cells}  {changes}".rstrip())
    return "\n".join(lines)


class Comparison:
    """Runs side by side (``llmtrace_nb.compare()``): displays as one bundle — its data
    (``application/vnd.llmtrace.compare+json``), an HTML twin and a text table.

    Attributes
    ----------
    data : dict
        The comparison as JSON-safe data: labels, totals and per-model metrics by side,
        the calls paired (in order, or by span name) with word-level diffs of their
        outputs, judgements.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)

    @property
    def frame(self) -> pd.DataFrame:
        """The comparison as a DataFrame.

        Returns
        -------
        pandas.DataFrame
            Metrics by side (rows: ``model`` — ``(all)`` for the totals — and
            ``metric``), with each later side's ``delta`` and ``ratio`` to the first.

        Examples
        --------
        >>> llmtrace_nb.compare("v1", "v2").frame.loc["(all)"]  # doctest: +SKIP
        """
        return _compare.frame(self.data)

    def html(self) -> str:
        """The static HTML twin.

        Returns
        -------
        str
            The same HTML the ``text/html`` representation carries: inline CSS, no
            script, every text escaped.

        Examples
        --------
        >>> from pathlib import Path
        >>> page = llmtrace_nb.compare("v1", "v2").html()  # doctest: +SKIP
        >>> Path("compare.html").write_text(page)  # doctest: +SKIP
        """
        return render_html(self.data)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None
                          ) -> dict[str, Any]:
        return {MIME_TYPE: self.data, "text/html": render_html(self.data),
                "text/plain": render_text(self.data)}

    def __repr__(self) -> str:
        return render_text(self.data)
