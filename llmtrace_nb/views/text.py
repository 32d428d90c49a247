"""The plain-text view, and the number formats every Python view shares.

Formats, as README's "The trace view" promises: thousands separators; cost to 4
significant digits, never in scientific notation; durations in ms below 1 s and in s
above; never "NaN" — an unpriced model says "no price".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .._read.semconv import PRICED_KINDS, tool_name
from .._read.values import to_float

#: below this a cost reads "<$0.000000001": 4 significant digits of 1e-200 are 200 zeros
MIN_COST = 1e-9
#: past this many seconds (or dollars) a number is written with 3 significant digits
MAX_PLAIN_SECONDS = 1e9
MAX_PLAIN_COST = 1e15


def format_duration(ms: float | None) -> str:
    if ms is None or ms != ms:
        return "–"
    if abs(ms) == float("inf"):
        return "∞ s" if ms > 0 else "–"
    ms += 0.0  # -0.0 reads "0 ms"
    if abs(ms) < 1000:
        return f"{ms:,.0f} ms".replace("-0 ms", "0 ms")
    seconds = ms / 1000
    return f"{seconds:,.2f} s" if abs(seconds) < MAX_PLAIN_SECONDS else f"{seconds:.3g} s"


def format_cost(usd: float | None) -> str:
    """Four significant digits, never in scientific notation; unknown is "no price"."""
    if usd is None or usd != usd or abs(usd) == float("inf"):
        return "no price"
    if usd == 0:
        return "$0"
    if 0 < usd < MIN_COST:
        return f"<${MIN_COST:.9f}"
    if usd >= MAX_PLAIN_COST:
        return f"${usd:.3g}"
    if usd >= 1000:
        return f"${usd:,.0f}"
    decimals = max(0, 3 - math.floor(math.log10(abs(usd))))
    text = f"{usd:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"${text}"


def format_count(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def headline(doc: Mapping[str, Any]) -> str:
    """``name · 4.82 s · 7 LLM calls · 12,431 tokens (9,870 in · 2,561 out) · $0.0183``"""
    t = doc["totals"]
    parts = [str(doc.get("name") or "trace"), format_duration(t.get("duration_ms")),
             plural(t.get("llm_calls", 0), "LLM call"),
             f"{t.get('total_tokens', 0):,} tokens ({t.get('input_tokens', 0):,} in · "
             f"{t.get('output_tokens', 0):,} out)",
             format_cost(t.get("cost_usd"))]
    if t.get("errors"):
        parts.append(plural(t["errors"], "error"))
    return " · ".join(parts)


def summary(doc: Mapping[str, Any]) -> str:
    """One paragraph: the headline, then what the numbers leave out."""
    lines = [headline(doc)]
    t = doc["totals"]
    if t.get("unpriced_models"):
        lines.append(f"  no price for: {', '.join(t['unpriced_models'])} "
                     "(set one with %llmtrace price)")
    same = t.get("same_call_spans")
    if same:
        lines.append(f"  {plural(same, 'span')} describe a call another span already counts "
                     "(a framework's span and the client's): counted once")
    evicted = doc.get("evicted")
    if evicted:
        lines.append(f"  {eviction_note(evicted)}")
    omitted = doc.get("omitted")
    if omitted:
        lines.append(f"  {omitted['spans']:,} more spans not shown "
                     "(their totals are included above)")
    if doc.get("open"):
        lines.append(f"  {plural(doc.get('open_spans', 0), 'span')} still running when shown")
    lines.extend(top_call_lines(doc))
    return "\n".join(lines)


#: calls listed by cost and by time in the text summary
TOP_CALLS = 3


def top_call_lines(doc: Mapping[str, Any]) -> list[str]:
    """The costliest and the slowest calls, one per line: where neither HTML nor our
    view renders (terminals, ``nbconvert --to markdown``, diffs), the rows that matter."""
    calls = [s for s in doc.get("spans") or () if isinstance(s, Mapping)
             and s.get("kind") in PRICED_KINDS and not s.get("duplicate_of")]
    if not calls:
        return []

    def line(span: Mapping[str, Any]) -> str:
        name = " ".join(str(span.get("name") or "(unnamed span)").split())
        label = name_label(span)
        tokens = span_tokens(span)
        parts = [f"{name} · {label}" if label else name,
                 format_duration(span.get("duration_ms"))]
        if tokens is not None:
            parts.append(f"{tokens:,} tok")
        parts.append(format_cost(span.get("cost_usd")))
        if span.get("status") == "error":
            parts.append(f"✕ {span.get('error_type') or 'error'}")
        return "    " + " · ".join(parts)

    def top(key: str) -> list[Mapping[str, Any]]:
        known = [s for s in calls if isinstance(s.get(key), int | float)]
        return sorted(known, key=lambda s: -s[key])[:TOP_CALLS]

    if len(calls) == 1:
        return ["  the call:", line(calls[0])]
    out = []
    for title, key in (("costliest calls", "cost_usd"), ("slowest calls", "duration_ms")):
        found = top(key)
        if found:
            out.append(f"  {title}:")
            out.extend(line(s) for s in found)
    return out


def eviction_note(evicted: Mapping[str, Any]) -> str:
    """What a view says of a cell whose spans left the buffer (``max_spans``)."""
    spans, uncounted = int(evicted.get("spans") or 0), int(evicted.get("uncounted") or 0)
    text = (f"{plural(spans, 'span')} of this cell left the buffer (max_spans) and "
            "are not listed")
    if uncounted:
        return text + (f"; {uncounted:,} of them left before they could be counted: the "
                       "totals cover the rest")
    return text + "; the totals include them"


def span_tokens(span: Mapping[str, Any]) -> int | None:
    """A span's total tokens: ``total_tokens``, else input + output when either is known
    (a trace document leaves the total out when it is their sum)."""
    def count(key: str) -> int | None:
        value = to_float(span.get(key))
        return None if value is None else int(value)

    total = count("total_tokens")
    inp, out = count("input_tokens"), count("output_tokens")
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    return total


def model_or_tool(span: Mapping[str, Any]) -> str | None:
    """A call's model, a tool span's tool (a document's ``tool``, or a frame row's
    attributes); None for other spans or when unknown."""
    kind = span.get("kind")
    label: Any = None
    if kind in PRICED_KINDS:
        label = span.get("model")
    elif kind == "tool":
        label = span.get("tool") or tool_name(span.get("attributes"))
    return label if isinstance(label, str) and label else None


def name_label(span: Mapping[str, Any]) -> str | None:
    """What tells a span's row from its neighbours beyond its name: its model or tool
    (every OpenAI call is named ``openai.chat``); None when the name already says it."""
    label = model_or_tool(span)
    if label is None:
        return None
    name = span.get("name")
    return None if isinstance(name, str) and label in name else label
