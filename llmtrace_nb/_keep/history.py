"""Keep: the spans of every stored session as one frame — ``history()``.

A session's spans are read through the frame builder the first time (the same rows
``spans_df()`` gave in that session), and the scalar columns it built are kept in the
store (``columns.py``); later reads of that session take those columns back as arrays.
Cost is priced again on every read, from the kept token counts, so a price that changed
since is today's. The dicts and lists (``attributes``, messages) are read from the
chunks only when asked for (``details=True``): they are most of what is stored, and
making a million of them alone takes longer than the whole frame without them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

import numpy as np
import pandas as pd

from .._capture.collector import SpanCollector
from .._capture.record import SPAN_ID, TRACE_ID
from .._shape.frames import SPAN_COLUMNS, FrameBuilder, frame_cost
from .._shape.pricing import PriceBook
from . import columns
from .restore import read_records
from .store import SessionInfo, Store

#: the columns only ``details=True`` reads (per-span dicts and lists)
DETAIL_COLUMNS = ("input_messages", "output_messages", "attributes")
#: spans_df()'s other columns, and the cost an instrumentation recorded (priced over it)
#: (cost_usd is priced again on each read)
_KEPT = (*(c for c in SPAN_COLUMNS if c not in (*DETAIL_COLUMNS, "cost_usd")), "_given_cost")


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
                  since: Any = None, until: Any = None, capture_content: bool = True,
                  details: bool = False) -> pd.DataFrame:
    """``spans_df()``'s columns (without ``attributes`` and the messages unless
    ``details``), plus ``session`` and ``notebook``, for the spans of every stored
    session (of ``notebook``) that started between ``since`` and ``until`` (times or
    ISO strings; naive ones are UTC)."""
    low, high = _ns(since, "since"), _ns(until, "until")
    sessions = [s for s in store.sessions(notebook)
                if (high is None or s.started_ns <= high)
                and (low is None or (s.last_ns or s.started_ns) >= low)]
    df = _detailed(store, prices, sessions, capture_content) if details else \
        _kept(store, prices, sessions)
    if low is not None or high is not None:
        start = df["start_time"].array.asi8
        keep = np.ones(len(df), dtype=bool)
        if low is not None:
            keep &= start >= low
        if high is not None:
            keep &= start <= high
        if not keep.all():
            attrs = df.attrs
            df = df[keep].reset_index(drop=True)
            df.attrs = attrs
    return df


def _kept(store: Store, prices: PriceBook, sessions: list[SessionInfo]) -> pd.DataFrame:
    last = store.last_chunks()
    wanted = [s for s in sessions if s.id in last]
    kept = store.frames(s.id for s in wanted)
    read: list[columns.Part] = []
    of: list[SessionInfo] = []
    for s in wanted:
        part = None
        found = kept.get(s.id)
        if found is not None and found[0] == last[s.id] and found[1] == columns.FORMAT:
            try:
                part = columns.parts(found[2])
            except columns.ColumnsError:
                part = None  # built again below
        if part is None:
            part = _build(store, prices, s.id, last[s.id])
        read.append(part)
        of.append(s)
    if not read:  # no session kept spans: the columns, no rows
        return _labelled(_kept_empty(prices), [], [])
    labels: dict[str, tuple[np.ndarray, list[str]]] = {}
    df = columns.frame(read, labels)
    cost, unpriced = frame_cost(df, prices, _groups(labels))
    df.insert(list(SPAN_COLUMNS).index("cost_usd"), "cost_usd", cost)
    df = _labelled(df.drop(columns="_given_cost"), of, [p.rows for p in read])
    df.attrs["unpriced_models"] = unpriced
    return df


def _groups(labels: dict[str, tuple[np.ndarray, list[str]]]
            ) -> dict[tuple[str | None, str], np.ndarray] | None:
    """The rows of each (provider, model), from their codes: grouping the strings of a
    million rows again would take a quarter of the read."""
    if "model" not in labels or "provider" not in labels:
        return None
    (models, model_names), (providers, provider_names) = labels["model"], labels["provider"]
    key = models * (len(provider_names) + 1) + (providers + 1)
    key[models < 0] = -1
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    out = {}
    for k, rows in zip(keys.tolist(), np.split(order, starts[1:]), strict=True):
        if k < 0:
            continue  # no model: not priced
        model, provider = divmod(k, len(provider_names) + 1)
        out[(provider_names[provider - 1] if provider else None, model_names[model])] = rows
    return out


def _build(store: Store, prices: PriceBook, session: int, upto: int) -> columns.Part:
    """A session's kept columns, built from its chunks up to ``upto`` (and kept, when
    the store takes them: a read-only or busy store is read all the same)."""
    records, refs, _ = read_records(store, [session], upto={session: upto})
    collector = SpanCollector(max(len(records), 1))
    collector.add_records(records, list(refs.values()))
    base, _, _ = FrameBuilder(collector, prices).base_frame()
    blob = columns.encode(base[list(_KEPT)])
    # derived data: when the store will not take it, the next read builds it again
    with contextlib.suppress(sqlite3.Error, OSError):
        store.keep_frame(session, upto, columns.FORMAT, blob)
    return columns.parts(blob)


def _kept_empty(prices: PriceBook) -> pd.DataFrame:
    base, _, _ = FrameBuilder(SpanCollector(1), prices).base_frame()
    return base[[c for c in SPAN_COLUMNS if c not in DETAIL_COLUMNS]].copy()


def _labelled(df: pd.DataFrame, sessions: list[SessionInfo], rows: list[int]
              ) -> pd.DataFrame:
    """``df`` with its rows' ``session`` and ``notebook`` (sessions in row order, each
    with its number of rows)."""
    which = np.repeat(np.arange(len(sessions)), rows)
    df["session"] = pd.array(np.array([s.id for s in sessions], dtype="int64")[which],
                             dtype="Int64")
    notebooks = pd.array([s.notebook for s in sessions], dtype="string")
    df["notebook"] = notebooks.take(which) if len(sessions) else \
        pd.array([], dtype="string")
    return df


def _detailed(store: Store, prices: PriceBook, sessions: list[SessionInfo],
              capture_content: bool) -> pd.DataFrame:
    """Every column, read from the chunks (the messages and attributes too)."""
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
    return df
