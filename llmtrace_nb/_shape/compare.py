"""Shape: runs side by side — ``compare()``'s numbers, as data and as a frame.

A side is a frame of spans (one traced cell's, the cells of a tag, or any spans_df-like
frame) with a label. From each side's calls (each call once: ``llm_calls``) come the
totals, the same per model, the calls paired (in order, or by span name) with a
word-level diff of their outputs, and the side's judgements. The result is plain
JSON-safe data (the MIME type ``application/vnd.llmtrace.compare+json``, its HTML twin
and text in ``views/compare.py``) and ``frame()``: metrics by side, with deltas and
ratios to the first side.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .frames import llm_calls

#: the comparison's version (its MIME data says it)
VERSION = 1
#: metrics of a side, in the order shown
METRICS = ("calls", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
           "cost_usd", "wall_ms", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms")
#: calls paired and shown with their outputs (the rest are counted)
MAX_PAIRS = 50
#: how calls can be paired: by position in their run, or by span name
PAIRINGS = ("order", "name")
#: characters of an output kept for its pair
MAX_OUTPUT = 2_000


@dataclass(frozen=True)
class Side:
    label: str
    spans: pd.DataFrame
    #: wall time when the side knows it (a cell's duration), else first start to last end
    wall_ms: float | None = None


def _number(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _quantile(values: pd.Series, q: float) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return _number(values.quantile(q)) if len(values) else None


def _metrics(calls: pd.DataFrame, wall_ms: float | None) -> dict[str, float | None]:
    def total(column: str) -> float | None:
        if column not in calls.columns or calls[column].isna().all():
            return None if calls.empty else 0.0
        return _number(pd.to_numeric(calls[column], errors="coerce").sum())

    cost = pd.to_numeric(calls["cost_usd"], errors="coerce") if len(calls) else pd.Series()
    return {
        "calls": float(len(calls)),
        "errors": float((calls["status"] == "error").sum()) if len(calls) else 0.0,
        "input_tokens": total("input_tokens"),
        "output_tokens": total("output_tokens"),
        "cache_read_tokens": total("cache_read_tokens"),
        # unknown when no call of the side has a price (not $0)
        "cost_usd": _number(cost.sum()) if cost.notna().any() else (
            0.0 if calls.empty else None),
        "wall_ms": wall_ms,
        "latency_p50_ms": _quantile(calls["duration_ms"], 0.5) if len(calls) else None,
        "latency_p95_ms": _quantile(calls["duration_ms"], 0.95) if len(calls) else None,
        "ttft_p50_ms": _quantile(calls["ttft_ms"], 0.5) if len(calls) else None,
    }


def _wall(side: Side) -> float | None:
    if side.wall_ms is not None:
        return side.wall_ms
    spans = side.spans
    if spans.empty:
        return None
    start, end = spans["start_time"].min(), spans["end_time"].max()
    if pd.isna(start) or pd.isna(end):
        return None
    return (end - start).total_seconds() * 1000.0


def _output_text(messages: Any) -> str | None:
    if not isinstance(messages, list | tuple):
        return None
    parts = []
    for message in messages:
        if isinstance(message, Mapping):
            content = message.get("content")
            if isinstance(content, str) and content:
                parts.append(content)
            for call in message.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    parts.append(f"[tool call {call.get('name')}({call.get('arguments')})]")
    return "\n".join(parts) if parts else None


def word_diff(a: str, b: str) -> list[list[str]]:
    """``[[op, text], ...]``: op is ``=`` (both), ``-`` (only in ``a``) or ``+`` (only in
    ``b``); words keep the whitespace after them, so the texts join back exactly."""
    wa, wb = _words(a), _words(b)
    out: list[list[str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False
                                                       ).get_opcodes():
        if tag == "equal":
            out.append(["=", "".join(wa[i1:i2])])
            continue
        if i2 > i1:
            out.append(["-", "".join(wa[i1:i2])])
        if j2 > j1:
            out.append(["+", "".join(wb[j1:j2])])
    return out


def _words(text: str) -> list[str]:
    words: list[str] = []
    current = ""
    for ch in text:
        if ch.isspace():
            current += ch
        else:
            if current and current[-1].isspace():
                words.append(current)
                current = ""
            current += ch
    if current:
        words.append(current)
    return words


def _call(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    text = _output_text(row.get("output_messages"))
    return {"name": str(row.get("name")), "model": _text(row.get("model")),
            "span_id": _text(row.get("span_id")),
            "input_tokens": _number(row.get("input_tokens")),
            "output_tokens": _number(row.get("output_tokens")),
            "cost_usd": _number(row.get("cost_usd")),
            "duration_ms": _number(row.get("duration_ms")),
            "status": _text(row.get("status")),
            "output": None if text is None else text[:MAX_OUTPUT]}


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _lined_up(ordered: Sequence[list[dict[str, Any]]], by: str
              ) -> list[tuple[dict[str, Any], list[dict[str, Any] | None]]]:
    """The calls of every side lined up, each line with what names it: by position, or
    by span name (the k-th call of a name on each side; names in the order they first
    ran, the first side's first)."""
    if by == "order":
        n = max((len(c) for c in ordered), default=0)
        return [({}, [c[i] if i < len(c) else None for c in ordered]) for i in range(n)]
    named: dict[str, list[list[dict[str, Any]]]] = {}
    for side, rows in enumerate(ordered):
        for row in rows:
            named.setdefault(str(row.get("name")), [[] for _ in ordered])[side].append(row)
    return [({"name": name, "nth": k + 1}, [rows[k] if k < len(rows) else None
                                          for rows in by_side])
            for name, by_side in named.items()
            for k in range(max(len(rows) for rows in by_side))]


def _pairs(calls: Sequence[pd.DataFrame], by: str) -> tuple[list[dict[str, Any]], int]:
    ordered = [c.sort_values("start_time", kind="stable").to_dict("records") for c in calls]
    lined = _lined_up(ordered, by)
    pairs = []
    for i, (named, rows) in enumerate(lined[:MAX_PAIRS]):
        sides = [_call(row) for row in rows]
        pair: dict[str, Any] = {"index": i, **named, "calls": sides}
        first, *rest = sides
        if first is not None and first["output"] is not None:
            pair["diffs"] = [None if s is None or s["output"] is None else
                             word_diff(first["output"], s["output"]) for s in rest]
        pairs.append(pair)
    return pairs, max(0, len(lined) - MAX_PAIRS)


def _judgements(judged: pd.DataFrame | None, calls: pd.DataFrame) -> list[dict[str, Any]]:
    if judged is None or judged.empty or calls.empty:
        return []
    mine = judged[judged["span_id"].isin(set(calls["span_id"]))]
    out = []
    for name, group in mine.groupby("evaluation", sort=True):
        scores = pd.to_numeric(group["score"], errors="coerce").dropna()
        out.append({"name": str(name), "count": len(group),
                    "mean_score": _number(scores.mean()) if len(scores) else None,
                    "pass_rate": _number(1.0 - group["negative"].astype(bool).mean())})
    return out


def compare(sides: Sequence[Side], judged: pd.DataFrame | None = None,
            pair: str = "order") -> dict[str, Any]:
    """The comparison of ``sides`` (two or more) as JSON-safe data; calls are paired by
    position (``pair="order"``) or by span name (``pair="name"``)."""
    if len(sides) < 2:
        raise ValueError("compare needs two sides or more")
    if pair not in PAIRINGS:
        raise ValueError(f"pair must be one of {', '.join(map(repr, PAIRINGS))}, "
                         f"not {pair!r}")
    calls = [llm_calls(s.spans) if len(s.spans) else s.spans for s in sides]
    totals = [_metrics(c, _wall(s)) for c, s in zip(calls, sides, strict=True)]
    models = sorted({str(m) for c in calls if len(c) for m in c["model"].dropna()})
    per_model = []
    for model in models:
        per_model.append({"model": model, "sides": [
            _metrics(c[c["model"] == model] if len(c) else c, None) for c in calls]})
    pairs, unpaired = _pairs(calls, pair)
    return {"version": VERSION, "labels": [s.label for s in sides],
            "metrics": list(METRICS), "totals": totals, "models": per_model,
            "paired_by": pair, "pairs": pairs, "more_pairs": unpaired,
            "judgements": [_judgements(judged, c) for c in calls]}


def frame(data: Mapping[str, Any]) -> pd.DataFrame:
    """Metrics (rows; per model as ``metric`` and ``model``) by side, with, for each side
    after the first, its delta and ratio to the first."""
    labels = list(data["labels"])
    rows = [("(all)", m, [t[m] for t in data["totals"]]) for m in data["metrics"]]
    for entry in data["models"]:
        rows += [(entry["model"], m, [s[m] for s in entry["sides"]]) for m in data["metrics"]
                 if m != "wall_ms"]
    records = []
    for model, metric, values in rows:
        record: dict[str, Any] = {"model": model, "metric": metric}
        first = values[0]
        for label, value in zip(labels, values, strict=True):
            record[label] = value
        for label, value in zip(labels[1:], values[1:], strict=True):
            record[f"delta {label}"] = (None if value is None or first is None
                                        else value - first)
            record[f"ratio {label}"] = (None if value is None or not first
                                        else value / first)
        records.append(record)
    df = pd.DataFrame.from_records(records).set_index(["model", "metric"])
    return df.astype("Float64")
