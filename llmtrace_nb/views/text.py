"""The plain-text view, and the number formats every Python view shares.

Formats, as README's "The trace view" promises: thousands separators; cost to 4
significant digits, never in scientific notation; durations in ms below 1 s and in s
above; never "NaN" — an unpriced model says "no price".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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
    return "\n".join(lines)


def eviction_note(evicted: Mapping[str, Any]) -> str:
    """What a view says of a cell whose spans left the buffer (``max_spans``)."""
    spans, uncounted = int(evicted.get("spans") or 0), int(evicted.get("uncounted") or 0)
    text = (f"{plural(spans, 'span')} of this cell left the buffer (max_spans) and "
            "are not listed")
    if uncounted:
        return text + (f"; {uncounted:,} of them left before they could be counted: the "
                       "totals cover the rest")
    return text + "; the totals include them"
