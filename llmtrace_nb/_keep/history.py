"""Keep: the spans of every stored session as one frame — ``history()``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .._capture.collector import SpanCollector
from .._capture.record import SPAN_ID, TRACE_ID
from .._shape.frames import FrameBuilder
from .._shape.pricing import PriceBook
from .restore import read_records
from .store import Store


def _ns(when: Any, name: str) -> int | None:
    if when is None:
        return None
    try:
        stamp = pd.Timestamp(when)
    except (ValueError, TypeError):
        raise ValueError(f"{name} is not a time: {when!r}") from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value)


def history_frame(store: Store, prices: PriceBook, *, notebook: str | None = None,
                  since: Any = None, until: Any = None,
                  capture_content: bool = True) -> pd.DataFrame:
    """``spans_df()``'s columns, plus ``session`` and ``notebook``, for the spans of
    every stored session (of ``notebook``) that started between ``since`` and ``until``
    (times or ISO strings; naive ones are UTC)."""
    low, high = _ns(since, "since"), _ns(until, "until")
    sessions = [s for s in store.sessions(notebook)
                if (high is None or s.started_ns <= high)
                and (low is None or (s.last_ns or s.started_ns) >= low)]
    session_of: list[int] = []
    records, refs, _ = read_records(store, [s.id for s in sessions], session_of)
    collector = SpanCollector(max(len(records), 1))
    added = collector.add_records(records, list(refs.values()))
    df = FrameBuilder(collector, prices).spans(capture_content=capture_content)
    if added == len(records):  # rows in the order the records were read
        df["session"] = pd.array(session_of, dtype="Int64")
    else:  # a span stored twice (two sessions): rows by id
        by_id = {(f"{r[TRACE_ID]:032x}", f"{r[SPAN_ID]:016x}"): s
                 for r, s in zip(records, session_of, strict=True)}
        df["session"] = pd.array([by_id.get(k) for k in zip(
            df["trace_id"], df["span_id"], strict=True)], dtype="Int64")
    notebooks = {s.id: s.notebook for s in sessions}
    df["notebook"] = df["session"].map(notebooks).astype("string")
    if low is not None or high is not None:
        start = df["start_time"].astype("int64")
        keep = pd.Series(True, index=df.index)
        if low is not None:
            keep &= start >= low
        if high is not None:
            keep &= start <= high
        df = df[keep].reset_index(drop=True)
    return df
