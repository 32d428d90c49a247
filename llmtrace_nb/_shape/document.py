"""Shape: the trace document — one cell's spans as versioned, bounded, JSON-safe data.

Every view renders from this document and none reads spans directly: the JupyterLab
renderer (``application/vnd.llmtrace.trace+json``), the static HTML twin, the per-cell
widget. It is saved in the notebook, so it must be small, self-describing and safe to
show: texts are truncated with a visible marker, strings are valid UTF-8, secrets were
scrubbed before (frames.py), and past a span limit the rest is summarized, not dropped.

Its schema (version 1: every key, its type, when it is null or left out, the kinds and
statuses) is ``trace_document.schema.json`` beside this file, the document's one
description: the tests validate what ``build`` returns against it (``schema.py``,
tests/test_document_schema.py) and the renderer's TypeScript types are generated from it.
A change to what ``build`` writes is a change to the schema (and to ``VERSION`` when an
older reader would misread it), followed by ``npm run build:types``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Container, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .._capture import judge, keys
from .._read import semconv
from .._read.semconv import CALL_KINDS, PRICED_KINDS, tool_name
from .._read.values import as_text, is_missing, to_float, to_text
from .frames import UNSET_STATUS

VERSION = 1
MIME_TYPE = "application/vnd.llmtrace.trace+json"
DEFAULT_MAX_SPANS = 10_000
DEFAULT_MAX_TEXT = 2_000
#: attribute values are cut shorter than messages: they are read less and there are more
MAX_ATTRIBUTE_TEXT = 500
#: a document aims to stay under this many characters; rows come first, and the detail
#: (messages, attributes) of spans fills what is left, errors and LLM and tool calls first
SIZE_TARGET = 2_800_000
ROW_ESTIMATE = 280
MIN_DETAIL_BUDGET = 50_000
MAX_NESTING = 20
TRUNCATION_MARKER = "… [truncated {n:,} more characters]"
#: what a cell's view saves: "compact" leaves out attributes the span's fields already
#: say; "full" keeps every attribute (``%llmtrace output``)
OUTPUTS = ("compact", "full")

SPAN_FIELDS = ("span_id", "parent_span_id", "trace_id", "name", "kind", "status",
               "error_type", "provider", "model", "request_model", "response_model",
               "input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
               "cache_write_tokens", "reasoning_tokens", "cost_usd", "ttft_ms", "is_streaming",
               "finish_reasons", "duplicate_of")
_COUNTS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
           "cache_write_tokens", "reasoning_tokens", "cost_usd", "ttft_ms")
#: identifiers and enums: cutting them would break the tree, so max_text never applies
_WHOLE = frozenset(("span_id", "parent_span_id", "trace_id", "kind", "status", "duplicate_of"))
_ALWAYS = frozenset(("span_id", "parent_span_id", "name", "kind", "depth", "start_ms",
                     "duration_ms"))


# -- JSON-safe values ---------------------------------------------------------------------


def clean_text(text: str) -> str:
    """Valid UTF-8: lone surrogates (and so undecodable bytes) become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def truncate(text: str, limit: int) -> tuple[str, bool]:
    text = clean_text(text)
    if len(text) <= limit:
        return text, False
    return text[:limit] + TRUNCATION_MARKER.format(n=len(text) - limit), True


def _number(value: Any) -> float | int | None:
    """A JSON number, or None for missing, NaN and anything that is not a number; an
    integer stays one (a count past 2**53 keeps its digits)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return to_float(value)


def _text(value: Any) -> str | None:
    return None if is_missing(value) else clean_text(str(value))


class _Budget:
    """Characters of detail left for the whole document."""

    def __init__(self, total: int) -> None:
        self.left = total


def _messages(messages: Any, max_text: int) -> tuple[list[dict[str, Any]] | None, bool]:
    """Messages with texts truncated; returns (messages, whether any text was cut)."""
    if not isinstance(messages, list):
        return None, False
    out: list[dict[str, Any]] = []
    truncated = False
    for msg in messages:
        if not isinstance(msg, Mapping):
            continue
        item: dict[str, Any] = {"role": _text(msg.get("role")) or "unknown"}
        content = msg.get("content")
        if content is not None:
            text, cut = truncate(as_text(content, MAX_NESTING), max_text)
            item["content"] = text
            truncated |= cut
        else:
            item["content"] = None
        calls = []
        for call in msg.get("tool_calls") or ():
            if not isinstance(call, Mapping):
                continue
            args = call.get("arguments")
            args_text, cut = (truncate(as_text(args, MAX_NESTING), max_text)
                              if args is not None else (None, False))
            truncated |= cut
            calls.append({"id": _text(call.get("id")), "name": _text(call.get("name")),
                          "arguments": args_text})
        if calls:
            item["tool_calls"] = calls
        for key in ("tool_call_id", "name", "finish_reason"):
            if msg.get(key) is not None:
                item[key] = _text(msg[key])
        if msg.get("unreadable"):
            item["unreadable"] = True
        out.append(item)
    return out, truncated


# -- attributes the fields already say ------------------------------------------------------
#
# An instrumented call carries its model, tokens, finish reasons and messages twice: as
# attributes and, read from them, as the span's fields and messages. Saved, that doubles
# a call's bytes (the messages' JSON is most of them). A compact document leaves out an
# attribute whose value a field of the same span shows: the field's dialect keys (in
# semconv.FIELD_KEYS) when the value read from the key equals the field, and the keys of
# the message dialect the span's messages were read from (text that could not be read
# as messages is shown as one, marked unreadable). Anything else stays, so a second
# dialect that disagrees is still shown.

#: span fields a document shows, by the FIELD_KEYS entry they are read from
_SHOWN_FIELDS = tuple(f for f in semconv.FIELD_KEYS if f in SPAN_FIELDS)
_FIELD_OF = {k: f for f in _SHOWN_FIELDS for k in semconv.FIELD_KEYS[f]}


def _agrees(field: str, value: Any, shown: Any) -> bool:
    if shown is None or is_missing(shown):
        return False
    coerce = semconv.COERCE.get(field, to_text)
    if coerce(value) == shown:
        return True
    parsed = semconv.loads(value) if isinstance(value, str) else None  # '["stop"]'
    return parsed is not None and not isinstance(parsed, str) and coerce(parsed) == shown


def _message_keys(attrs: Mapping[str, Any], readers: Sequence[semconv.MessageReader]
                  ) -> set[str]:
    """The keys of the first dialect in ``readers`` the span carries (the one its
    messages were read from)."""
    for reader in readers:
        found = {k for k in attrs if k in reader.keys
                 or (reader.prefixes and k.startswith(reader.prefixes))}
        if found:
            return found
    return set()


def _said_by_fields(row: Mapping[str, Any], attrs: Mapping[str, Any]) -> set[str]:
    """Attribute keys whose value the row's fields or messages already show."""
    said = {k for k, v in attrs.items()
            if k in _FIELD_OF and _agrees(_FIELD_OF[k], v, row.get(_FIELD_OF[k]))}
    if row.get("kind") != "tool":
        if row.get("input_messages"):
            said |= _message_keys(attrs, semconv.INPUT_READERS)
        if row.get("output_messages"):
            said |= _message_keys(attrs, semconv.OUTPUT_READERS)
    if attrs.get(keys.KIND) == row.get("kind"):
        said.add(keys.KIND)
    if row.get("kind") == "cell":  # the document's own name and number
        said |= {keys.CELL_NAME, keys.CELL_NUMBER}
    return said


def _attributes(attrs: Any, leave_out: Container[str] = frozenset()
                ) -> tuple[dict[str, Any], bool]:
    if not isinstance(attrs, Mapping):
        return {}, False
    out: dict[str, Any] = {}
    truncated = False
    for key, value in attrs.items():
        if key in leave_out:
            continue
        if isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value)):
            out[clean_text(str(key))] = value
            continue
        text, cut = truncate(as_text(value, MAX_NESTING), MAX_ATTRIBUTE_TEXT)
        out[clean_text(str(key))] = text
        truncated |= cut
    return out, truncated


# -- building -----------------------------------------------------------------------------


_ROW_COLUMNS = (*SPAN_FIELDS, "duration_ms", "input_messages", "output_messages",
                "attributes")


def _records(spans: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as dicts of plain values (column by column: DataFrame.to_dict("records")
    is several times slower), with start and end as integer nanoseconds."""
    columns = {c: spans[c].tolist() for c in _ROW_COLUMNS}
    # a private frame (the cache's, shared) marks the calls whose attributes its copies
    # would show as otel.status_code UNSET; a public frame's copies show it already
    if "_status_unset" in spans.columns:
        key, value = UNSET_STATUS
        columns["attributes"] = [
            {**a, key: value} if unset and isinstance(a, Mapping) and key not in a else a
            for a, unset in zip(columns["attributes"], spans["_status_unset"].tolist(),
                                strict=True)]
    # NaT (a time that could not be read) is _NAT here; see _known_ns
    columns["_start_ns"] = spans["start_time"].array.asi8.tolist()
    columns["_end_ns"] = spans["end_time"].array.asi8.tolist()
    names = list(columns)
    return [dict(zip(names, values, strict=True))
            for values in zip(*columns.values(), strict=True)]


def _judgements(rows: Sequence[dict[str, Any]], max_text: int
                ) -> dict[str, list[dict[str, Any]]]:
    """The judgements among ``rows`` (``_capture/judge.py``), by the span id they judge,
    oldest first; only those whose judged span is among the rows."""
    ids = {r["span_id"] for r in rows}
    out: dict[str, list[dict[str, Any]]] = {}
    for row in sorted((r for r in rows if r["name"] == judge.EVALUATION
                       and r["parent_span_id"] in ids), key=lambda r: r["_start_ns"]):
        attrs = row["attributes"] if isinstance(row["attributes"], Mapping) else {}
        name = attrs.get(judge.EVALUATION_NAME)
        if not isinstance(name, str):
            continue
        score = _number(attrs.get(judge.SCORE_VALUE))
        label = _text(attrs.get(judge.SCORE_LABEL))
        explanation = _text(attrs.get(judge.EXPLANATION))
        out.setdefault(row["parent_span_id"], []).append({
            "name": truncate(clean_text(name), max_text)[0],
            "score": score,
            "label": None if label is None else truncate(label, max_text)[0],
            "explanation": None if explanation is None else truncate(explanation,
                                                                     max_text)[0],
            "negative": judge.is_negative(score, label)})
    return {k: [{f: v for f, v in e.items() if v is not None} for e in found]
            for k, found in out.items()}


def _tree_order(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Rows as (row, depth) in depth-first order; siblings by start time."""
    ids = {r["span_id"] for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in rows:
        parent = r["parent_span_id"] if r["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(r)
    for kids in children.values():
        kids.sort(key=lambda r: (r["_start_ns"], r["span_id"] or ""))
    ordered: list[tuple[dict[str, Any], int]] = []
    stack = [(r, 0) for r in reversed(children.get(None, []))]
    seen: set[str | None] = set()
    while stack:
        row, depth = stack.pop()
        if row["span_id"] in seen:  # a malformed parent cycle must not loop forever
            continue
        seen.add(row["span_id"])
        ordered.append((row, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(row["span_id"], [])))
    # spans caught in a parent cycle are unreachable from the roots: show them at depth 0
    ordered.extend((r, 0) for r in rows if r["span_id"] not in seen)
    return ordered


def _counts(row: Mapping[str, Any]) -> bool:
    """Whether a row counts in totals (it is not the duplicate of another row's call)."""
    return _text(row.get("duplicate_of")) is None


def _totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    calls = [r for r in rows if r["kind"] in PRICED_KINDS and _counts(r)]
    costs = [r["cost_usd"] for r in calls if _number(r["cost_usd"]) is not None]

    def total(key: str) -> int:
        return int(sum(_number(r[key]) or 0 for r in calls))

    # a model is unpriced when a call reported usage and still got no cost; a call with
    # no usage (a stream without include_usage) has nothing to price
    unpriced = sorted({clean_text(str(r["model"])) for r in calls
                       if _number(r["cost_usd"]) is None and _text(r["model"])
                       and (_number(r["input_tokens"]) or _number(r["output_tokens"]))})
    return {
        "spans": len(rows),
        "llm_calls": len(calls),
        "input_tokens": total("input_tokens"),
        "output_tokens": total("output_tokens"),
        "total_tokens": total("input_tokens") + total("output_tokens"),
        "cache_read_tokens": total("cache_read_tokens"),
        "cache_write_tokens": total("cache_write_tokens"),
        # no calls cost nothing; calls none of which has a price have no known cost
        "cost_usd": float(sum(costs)) if costs else (0.0 if not calls else None),
        "errors": sum(1 for r in rows if r["status"] == "error" and _counts(r)),
        # spans that describe a call another span counts (see calls.py)
        "same_call_spans": sum(1 for r in rows if not _counts(r)),
        "unpriced_models": unpriced,
    }


def build(spans: pd.DataFrame, *, name: str, cell: int | None = None,
          start_ns: int | None = None, end_ns: int | None = None, open_spans: int = 0,
          max_spans: int = DEFAULT_MAX_SPANS, max_text: int = DEFAULT_MAX_TEXT,
          evicted: Mapping[str, float] | None = None, output: str = "compact"
          ) -> dict[str, Any]:
    """The trace document of one cell, from its rows of ``spans_df()``; ``evicted`` are
    the totals of the cell's spans that left the buffer (``FrameBuilder.evicted``);
    ``output`` one of ``OUTPUTS``."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    rows = _records(spans)
    # judgements are shown on the span they judge, not as spans of their own
    judged = _judgements(rows, max_text)
    if judged:
        rows = [r for r in rows if r["name"] != judge.EVALUATION
                or r["parent_span_id"] not in judged]
    if start_ns is None:
        start_ns = min(_known_ns(r["_start_ns"] for r in rows), default=None)
    ordered = _tree_order(rows)
    shown, hidden = ordered[:max_spans], [r for r, _ in ordered[max_spans:]]
    totals = _totals(rows)
    roots = [r for r in rows if r["kind"] == "cell"]
    if roots:
        totals["duration_ms"] = _number(roots[0]["duration_ms"])
    elif start_ns is not None:
        last = end_ns or max(_known_ns(r["_end_ns"] for r in rows), default=start_ns)
        totals["duration_ms"] = (last - start_ns) / 1e6
    else:
        totals["duration_ms"] = 0.0
    trace_id = _main_trace(rows)
    budget = _Budget(max(MIN_DETAIL_BUDGET, SIZE_TARGET - ROW_ESTIMATE * len(shown)))
    doc_spans: list[dict[str, Any]] = [{} for _ in shown]
    for i in _detail_priority([r for r, _ in shown]):
        row, depth = shown[i]
        doc_spans[i] = _span(row, depth, start_ns or 0, max_text, budget, trace_id,
                             output == "compact")
        if row["span_id"] in judged:
            doc_spans[i]["evaluations"] = judged[row["span_id"]]
    gone = _evicted(totals, evicted)
    omitted = None
    if hidden:
        t = _totals(hidden)
        omitted = {k: t[k] for k in ("spans", "llm_calls", "input_tokens", "output_tokens",
                                     "cost_usd", "errors")}
    return {
        "version": VERSION,
        "generator": f"llmtrace_nb {_package_version()}",
        "cell": cell,
        "name": clean_text(name),
        "start_time": (pd.Timestamp(start_ns, unit="ns", tz="UTC").isoformat()
                       if start_ns is not None else None),
        "trace_id": trace_id,
        "open": open_spans > 0,
        "open_spans": open_spans,
        "totals": totals,
        "omitted": omitted,
        "evicted": gone,
        "limits": {"max_spans": max_spans, "max_text": max_text},
        "spans": doc_spans,
    }


_NAT = np.iinfo(np.int64).min


def _known_ns(values: Any) -> list[int]:
    return [v for v in values if v != _NAT]


def _evicted(totals: dict[str, Any], evicted: Mapping[str, float] | None
             ) -> dict[str, int] | None:
    """Add to ``totals`` what the cell's spans evicted from the buffer counted; the
    document's ``evicted``: how many spans left, and how many of them no total counts."""
    if not evicted or not evicted.get("spans"):
        return None
    for key in ("llm_calls", "input_tokens", "output_tokens", "cache_read_tokens",
                "cache_write_tokens", "errors"):
        totals[key] = int(totals.get(key) or 0) + int(evicted.get(key, 0))
    totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
    cost = float(evicted.get("cost_usd", 0.0))
    if cost or totals.get("cost_usd") is not None:
        totals["cost_usd"] = (totals.get("cost_usd") or 0.0) + cost
    totals["spans"] = int(totals["spans"]) + int(evicted["spans"])
    return {"spans": int(evicted["spans"]), "uncounted": int(evicted.get("uncounted", 0))}


def _main_trace(rows: Sequence[dict[str, Any]]) -> str | None:
    """The trace most spans belong to (the cell root's); spans elsewhere name their own."""
    counts: dict[str, int] = {}
    for r in rows:
        if r["trace_id"] is not None and r["trace_id"] is not pd.NA:
            counts[r["trace_id"]] = counts.get(r["trace_id"], 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def _detail_priority(rows: Sequence[dict[str, Any]]) -> list[int]:
    """Which spans get their messages and attributes first when space is short."""
    def rank(i: int) -> tuple[int, int, int]:
        r = rows[i]
        return (r["status"] != "error", r["kind"] not in CALL_KINDS, i)

    return sorted(range(len(rows)), key=rank)


def _span(row: dict[str, Any], depth: int, origin_ns: int, max_text: int,
          budget: _Budget, trace_id: str | None, compact: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in SPAN_FIELDS:
        value = row.get(key)
        if key in _COUNTS:
            out[key] = _number(value)
        elif key == "is_streaming":
            out[key] = None if value is None or value is pd.NA else bool(value)
        else:
            text = _text(value)
            out[key] = (text if text is None or key in _WHOLE
                        else truncate(text, max_text)[0])
    if out["kind"] == "tool":
        # frameworks name tool spans "execute_tool" or "FunctionTool": the row needs
        # the tool's own name beside it
        tool = tool_name(row.get("attributes"))
        if tool and tool not in (out.get("name") or ""):
            out["tool"] = truncate(tool, max_text)[0]
    out["depth"] = depth
    start = row["_start_ns"]
    out["start_ms"] = round((start - origin_ns) / 1e6, 3) if start != _NAT else 0.0
    duration = _number(row.get("duration_ms"))
    out["duration_ms"] = round(duration, 3) if duration is not None else None
    _drop_redundant(out, trace_id)
    truncated = False
    if budget.left > 0:
        inputs, cut_in = _messages(row.get("input_messages"), max_text)
        outputs, cut_out = _messages(row.get("output_messages"), max_text)
        raw = row.get("attributes")
        said = (_said_by_fields(row, raw) if compact and isinstance(raw, Mapping)
                else frozenset())
        attrs, cut_attrs = _attributes(raw, said)
        budget.left -= len(json.dumps([inputs, outputs, attrs], ensure_ascii=False))
        out["input_messages"], out["output_messages"] = inputs, outputs
        out["attributes"] = attrs or None
        truncated = cut_in or cut_out or cut_attrs
    else:
        out["detail"] = "omitted"
    if truncated:
        out["truncated"] = True
    # Unknown values are left out rather than written as null: a 10k-span document is
    # mostly spans, and views treat a missing field as unknown anyway.
    return {k: v for k, v in out.items() if v is not None or k in _ALWAYS}


def _drop_redundant(out: dict[str, Any], trace_id: str | None) -> None:
    """Leave out what a view can derive, to keep 10k-span documents small."""
    if out.get("trace_id") == trace_id:
        out["trace_id"] = None
    for key in ("request_model", "response_model"):
        if out.get(key) == out.get("model"):
            out[key] = None
    if out.get("total_tokens") == (out.get("input_tokens") or 0) + (
            out.get("output_tokens") or 0):
        out["total_tokens"] = None
    for key in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        if out.get(key) == 0:
            out[key] = None
    if out.get("is_streaming") is False:
        out["is_streaming"] = None
    if out.get("status") == "unset":
        out["status"] = None


def _package_version() -> str:
    from .._version import __version__

    return __version__


def to_json(doc: Mapping[str, Any]) -> str:
    """Compact JSON; raises if the document is not JSON-safe (a bug, never user data)."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
