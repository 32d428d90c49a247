"""Shape: the collected spans as pandas DataFrames (columns and dtypes per CONTRACT.md).

Third stage of the data flow. The build is columnar and incremental: spans converted by
an earlier call are kept, and a call converts only the spans that arrived since. Cost is
computed per call over the whole frame (prices can be overridden at any time), vectorized
with one price lookup per distinct (provider, model).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from . import semconv
from .collector import CellRef, Snapshot, SpanCollector
from .pricing import PriceBook, cost_column
from .scrub import scrub_attributes, scrub_value

STRING_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "error_type", "cell_name", "provider",
    "request_model", "response_model", "model", "finish_reasons",
)
INT_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
               "reasoning_tokens")

#: spans_df() columns, in order
SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "status", "error_type",
    "start_time", "end_time", "duration_ms", "cell", "cell_name", "provider",
    "request_model", "response_model", "model", *INT_COLUMNS, "cost_usd", "ttft_ms",
    "is_streaming", "finish_reasons", "input_messages", "output_messages", "attributes",
)
# Columns kept while building, dropped from the public frame.
_PRIVATE = ("_given_cost", "_cell_seq")
_ROW_FIELDS = (*SPAN_COLUMNS[:SPAN_COLUMNS.index("cost_usd")], "ttft_ms", "is_streaming",
               "finish_reasons", "input_messages", "output_messages", "attributes",
               "_given_cost", "_cell_seq")

STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
STATUSES = ("ok", "error", "unset")
PRICED_KINDS = ("llm", "embedding")

CELL_COLUMNS = ("cell", "cell_name", "trace_id", "start_time", "duration_ms", "llm_calls",
                "input_tokens", "output_tokens", "cost_usd", "errors", "tags")
SUMMARY_COLUMNS = ("calls", "errors", "input_tokens", "output_tokens", "cost_usd",
                   "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "tokens_per_s")


# -- one span → one row -------------------------------------------------------------------


def _hex(value: int | None, width: int) -> str | None:
    return None if value is None else format(value, f"0{width}x")


def _error_type(fields: dict[str, Any], span: ReadableSpan, status: str) -> str | None:
    if fields["error_type"]:
        return str(fields["error_type"])
    for event in span.events:
        if event.name == "exception":
            exc_type = (event.attributes or {}).get("exception.type")
            if exc_type:
                return semconv.error_name(str(exc_type))
    if status == "error":
        return "error"
    return None


def span_row(span: ReadableSpan, cell: CellRef | None) -> tuple[Any, ...]:
    """The fields of one span, in ``_ROW_FIELDS`` order (cost comes later, vectorized)."""
    raw = dict(span.attributes or {})
    ctx = span.context
    parent = span.parent
    fields = semconv.scalar_fields(raw)
    kind = semconv.span_kind(raw, fields)
    status = STATUS.get(span.status.status_code, "unset")
    start, end = span.start_time, span.end_time
    inputs, outputs = semconv.messages(raw, span.events, kind, span.name)
    request_model, response_model = fields["request_model"], fields["response_model"]
    return (
        _hex(ctx.trace_id, 32) if ctx else None,
        _hex(ctx.span_id, 16) if ctx else None,
        _hex(parent.span_id, 16) if parent else None,
        span.name,
        kind,
        status,
        _error_type(fields, span, status),
        start,
        end,
        (end - start) / 1e6 if start is not None and end is not None else None,
        cell.number if cell else None,
        cell.name if cell else None,
        fields["provider"],
        request_model,
        response_model,
        response_model or request_model,
        *(fields[c] for c in INT_COLUMNS),
        semconv.ttft_ms(fields, span.events, start),
        fields["is_streaming"],
        fields["finish_reasons"] or _finish_from_messages(outputs),
        scrub_value(inputs),
        scrub_value(outputs),
        _marked(scrub_attributes(raw), fields[semconv.UNREADABLE], inputs, outputs),
        fields["cost_usd"],
        cell.seq if cell else None,
    )


def _marked(attrs: dict[str, Any], unreadable: list[str], *messages: Any) -> dict[str, Any]:
    """Name the attributes that could not be read, in the row's own attributes."""
    keys = list(unreadable)
    if any(isinstance(m, list) and any(x.get("unreadable") for x in m) for m in messages):
        keys.append("messages")
    if keys:
        attrs["llmtrace.unreadable"] = ",".join(keys)
    return attrs


def _finish_from_messages(outputs: list[dict[str, Any]] | None) -> str | None:
    if not outputs:
        return None
    reasons = [m["finish_reason"] for m in outputs if m.get("finish_reason")]
    return ",".join(reasons) or None


def rows_to_frame(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """Columnar build with the contract's dtypes."""
    cols: dict[str, Any] = dict.fromkeys(_ROW_FIELDS)
    transposed = list(zip(*rows, strict=True)) if rows else [() for _ in _ROW_FIELDS]
    for name, values in zip(_ROW_FIELDS, transposed, strict=True):
        cols[name] = values
    n = len(rows)
    data: dict[str, Any] = {}
    for name in _ROW_FIELDS:
        values = cols[name]
        if name in STRING_COLUMNS:
            data[name] = pd.array(list(values), dtype="string")
        elif name in INT_COLUMNS or name == "cell":
            data[name] = pd.array(list(values), dtype="Int64")
        elif name in ("start_time", "end_time"):
            ns = np.array([v if v is not None else np.iinfo(np.int64).min for v in values],
                          dtype="int64")
            data[name] = pd.to_datetime(ns, utc=True, unit="ns") if n else pd.to_datetime(
                pd.Series([], dtype="int64"), utc=True, unit="ns")
        elif name in ("duration_ms", "ttft_ms", "_given_cost", "_cell_seq"):
            data[name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        elif name == "kind":
            data[name] = pd.Categorical(list(values), categories=semconv.KINDS)
        elif name == "status":
            data[name] = pd.Categorical(list(values), categories=STATUSES)
        elif name == "is_streaming":
            data[name] = pd.array(list(values), dtype="boolean")
        else:
            obj = np.empty(n, dtype=object)
            obj[:] = list(values)
            data[name] = obj
    return pd.DataFrame(data)


# -- the incremental frame ----------------------------------------------------------------


@dataclass
class _Cache:
    generation: int = -1
    first_seq: int = 0
    end_seq: int = 0
    frame: pd.DataFrame | None = None


class FrameBuilder:
    """Keeps the converted rows of one collector; converts only what is new."""

    def __init__(self, collector: SpanCollector, prices: PriceBook) -> None:
        self.collector = collector
        self.prices = prices
        self._lock = threading.Lock()
        self._cache = _Cache()
        #: converted rows by the last call (for tests and benchmarks)
        self.last_converted = 0

    def base_frame(self) -> tuple[pd.DataFrame, Snapshot]:
        snap = self.collector.snapshot()
        with self._lock:
            cache = self._cache
            if cache.generation != snap.generation or cache.frame is None:
                cache = _Cache(generation=snap.generation, first_seq=snap.first_seq,
                               end_seq=snap.first_seq)
            frame = cache.frame
            if frame is not None and snap.first_seq > cache.first_seq:
                evicted = min(snap.first_seq - cache.first_seq, len(frame))
                frame = frame.iloc[evicted:].reset_index(drop=True)
                cache.first_seq += evicted
            start = max(cache.end_seq - snap.first_seq, 0)
            new_entries = snap.entries[start:]
            new = rows_to_frame(self._convert(new_entries)) if new_entries else None
            if frame is None:
                frame = new if new is not None else rows_to_frame([])
            elif new is not None:
                frame = pd.concat([frame, new], ignore_index=True)
            cache.frame = frame
            cache.end_seq = snap.end_seq
            cache.first_seq = snap.end_seq - len(frame)
            self._cache = cache
            self.last_converted = len(new_entries)
        return frame, snap

    def _convert(self, entries: Iterable[tuple[ReadableSpan, CellRef | None]]
                 ) -> list[tuple[Any, ...]]:
        by_trace = {c.trace_id: c for c in self.collector.cells() if c.trace_id is not None}
        rows = []
        for span, cell in entries:
            if cell is None and span.context is not None:
                cell = by_trace.get(span.context.trace_id)
            rows.append(span_row(span, cell))
        return rows

    def spans(self, capture_content: bool = True, keep_private: bool = False) -> pd.DataFrame:
        base, snap = self.base_frame()
        df = base.copy(deep=False)  # the cached columns are never written to
        eligible = (df["kind"].isin(PRICED_KINDS).to_numpy()
                    & df["model"].notna().to_numpy()
                    & (df["input_tokens"].notna() | df["output_tokens"].notna()).to_numpy())
        cost, unpriced = cost_column(
            self.prices,
            df["provider"].to_numpy(dtype=object, na_value=None),
            df["model"].to_numpy(dtype=object, na_value=None),
            df["input_tokens"].to_numpy(dtype="float64", na_value=np.nan),
            df["cache_read_tokens"].to_numpy(dtype="float64", na_value=np.nan),
            df["output_tokens"].to_numpy(dtype="float64", na_value=np.nan),
            eligible,
        )
        given = df["_given_cost"].to_numpy()
        # A cost the instrumentation already computed wins over ours.
        cost = np.where(np.isnan(given), cost, given)
        if unpriced:
            priced_models = set(df.loc[~np.isnan(cost) & eligible, "model"].dropna())
            unpriced -= priced_models
        df.insert(SPAN_COLUMNS.index("cost_usd"), "cost_usd", cost)
        if not keep_private:
            df = df.drop(columns=list(_PRIVATE))
        if not capture_content:
            df["input_messages"] = None
            df["output_messages"] = None
            df["attributes"] = [
                {k: v for k, v in a.items() if not semconv.is_content_key(k)}
                for a in df["attributes"]
            ]
        df.attrs["dropped_spans"] = snap.dropped
        df.attrs["unpriced_models"] = sorted(unpriced)
        return df


# -- derived frames -----------------------------------------------------------------------


def llm_calls(spans: pd.DataFrame) -> pd.DataFrame:
    out = spans[spans["kind"].isin(PRICED_KINDS)].reset_index(drop=True)
    out.attrs = dict(spans.attrs)
    return out


def cells(spans: pd.DataFrame, registry: Sequence[CellRef]) -> pd.DataFrame:
    """One row per traced cell that has spans."""
    with_cell = spans[spans["cell"].notna()]
    rows = []
    roots = {c.root_span_id: c for c in registry if c.root_span_id is not None}
    for (cell_no, cell_name), group in with_cell.groupby(["cell", "cell_name"], sort=False,
                                                          observed=True, dropna=True):
        root = group[group["kind"] == "cell"]
        if len(root):
            r = root.iloc[0]
            trace_id, start, duration = r["trace_id"], r["start_time"], r["duration_ms"]
            ref = roots.get(int(r["span_id"], 16))
            tags = dict(ref.tags) if ref else {}
        else:
            trace_id = group["trace_id"].iloc[0]
            start = group["start_time"].min()
            duration = (group["end_time"].max() - start).total_seconds() * 1000.0
            tags = {}
        calls = group[group["kind"].isin(PRICED_KINDS)]
        cost = calls["cost_usd"]
        rows.append({
            "cell": cell_no, "cell_name": cell_name, "trace_id": trace_id,
            "start_time": start, "duration_ms": duration, "llm_calls": len(calls),
            "input_tokens": calls["input_tokens"].sum(min_count=1),
            "output_tokens": calls["output_tokens"].sum(min_count=1),
            "cost_usd": cost.sum(min_count=1),
            "errors": int((group["status"] == "error").sum()),
            "tags": tags,
        })
    df = pd.DataFrame(rows, columns=list(CELL_COLUMNS))
    df = df.astype({
        "cell": "Int64", "cell_name": "string", "trace_id": "string",
        "duration_ms": "float64", "llm_calls": "int64", "input_tokens": "Int64",
        "output_tokens": "Int64", "cost_usd": "float64", "errors": "int64",
    })
    df["start_time"] = pd.to_datetime(df["start_time"], utc=True)
    df = df.sort_values("start_time", kind="stable").reset_index(drop=True)
    df.attrs = dict(spans.attrs)
    return df


def summary(calls: pd.DataFrame, by: str | Sequence[str] = "model") -> pd.DataFrame:
    """Per-group calls, errors, tokens, cost, latency and TTFT percentiles, throughput."""
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in calls.columns]
    if missing:
        raise KeyError(f"summary(by=...): no column {missing!r}; columns are "
                       f"{', '.join(calls.columns)}")
    if calls.empty:
        df = pd.DataFrame(columns=list(SUMMARY_COLUMNS))
        df.index = pd.MultiIndex.from_tuples([], names=keys) if len(keys) > 1 else pd.Index(
            [], name=keys[0])
        df.attrs = dict(calls.attrs)
        return df
    work = calls.assign(
        _err=(calls["status"] == "error").astype("int64"),
        _secs=calls["duration_ms"] / 1000.0,
    )
    grouped = work.groupby(keys, sort=True, observed=True, dropna=False)
    out = pd.DataFrame({
        "calls": grouped.size(),
        "errors": grouped["_err"].sum(),
        "input_tokens": grouped["input_tokens"].sum(min_count=1),
        "output_tokens": grouped["output_tokens"].sum(min_count=1),
        "cost_usd": grouped["cost_usd"].sum(min_count=1),
        "latency_p50_ms": grouped["duration_ms"].quantile(0.5),
        "latency_p95_ms": grouped["duration_ms"].quantile(0.95),
        "ttft_p50_ms": grouped["ttft_ms"].quantile(0.5),
    })
    secs = grouped["_secs"].sum()
    out["tokens_per_s"] = (out["output_tokens"].astype("float64") / secs.where(secs > 0))
    out = out.astype({"calls": "int64", "errors": "int64", "input_tokens": "Int64",
                      "output_tokens": "Int64", "cost_usd": "float64"})
    out.attrs = dict(calls.attrs)
    return out
