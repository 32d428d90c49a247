"""history(): the first read builds a session's columns from its chunks and keeps them,
later reads take them back; both give the rows spans_df() gives."""

from __future__ import annotations

import sqlite3
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_keep import recorded

from llmtrace_nb._capture.collector import CellRef, SpanCollector
from llmtrace_nb._keep import columns
from llmtrace_nb._keep.history import DETAIL_COLUMNS, history_frame
from llmtrace_nb._keep.restore import restore
from llmtrace_nb._keep.store import Store
from llmtrace_nb._keep.writer import StoreWriter
from llmtrace_nb._shape.frames import SPAN_COLUMNS, FrameBuilder
from llmtrace_nb._shape.pricing import PriceBook

from docs import _tree
from spans import Recorder, openai_chat

SCALAR = [c for c in SPAN_COLUMNS if c not in DETAIL_COLUMNS]


def _stored(tmp_path: Path, *recs: Recorder, notebook: str = "/nb.ipynb"
            ) -> tuple[Store, list[int], list[StoreWriter]]:
    store = Store(tmp_path / "s.sqlite")
    sessions, writers = [], []
    for rec in recs:
        session = store.begin_session(time.time_ns(), None, notebook)
        writer = StoreWriter(rec.collector, store, session, content=lambda: True,
                             interval_s=3600)
        writer.flush()
        sessions.append(session)
        writers.append(writer)
    return store, sessions, writers


def _kept(store: Store) -> dict[int, tuple[int, int]]:
    with sqlite3.connect(store.path) as conn:
        return {s: (upto, fmt) for s, upto, fmt in
                conn.execute("SELECT session, upto, format FROM frames")}


def test_a_second_read_comes_from_the_kept_columns_and_equals_the_first(tmp_path: Path
                                                                        ) -> None:
    first_rec, second_rec = recorded(), recorded()
    store, sessions, _ = _stored(tmp_path, first_rec, second_rec)
    assert _kept(store) == {}
    first = history_frame(store, PriceBook())
    assert set(_kept(store)) == set(sessions)
    again = history_frame(store, PriceBook())
    pd.testing.assert_frame_equal(first, again)
    assert list(first.columns) == [*SCALAR, "session", "notebook"]
    # the rows spans_df() gives for the same spans restored into a session
    restored = SpanCollector(1000)
    restore(restored, store, sessions)
    live = FrameBuilder(restored, PriceBook()).spans()
    pd.testing.assert_frame_equal(first[SCALAR], live[SCALAR])
    assert first["session"].tolist() == [sessions[0]] * len(first_rec.collector) + \
        [sessions[1]] * len(second_rec.collector)
    assert set(first["notebook"]) == {"/nb.ipynb"}
    assert first["cost_usd"].notna().any() and first.attrs["unpriced_models"] == \
        live.attrs["unpriced_models"] == ["house-model-7b"]


def test_details_reads_the_messages_and_attributes_too(tmp_path: Path) -> None:
    rec = Recorder()
    _tree(rec, CellRef(number=3, name="with text"), payload="what the model said")
    store, _, _ = _stored(tmp_path, rec)
    quick = history_frame(store, PriceBook())
    full = history_frame(store, PriceBook(), details=True)
    assert list(full.columns) == [*SPAN_COLUMNS, "session", "notebook"]
    pd.testing.assert_frame_equal(full[quick.columns], quick, check_like=True)
    said = [m for m in full["output_messages"].dropna() if m]
    assert said and said[0][0]["content"] == "what the model said"
    assert full["attributes"].map(type).eq(dict).all()


def test_a_session_that_grew_is_built_again_and_others_are_not(tmp_path: Path) -> None:
    grows, stays = recorded(), recorded()
    store, (growing, steady), (writer, _) = _stored(tmp_path, grows, stays)
    before = history_frame(store, PriceBook())
    kept = _kept(store)
    grows.span("later", openai_chat("gpt-4o", inp=10, out=2))
    writer.flush()
    after = history_frame(store, PriceBook())
    assert len(after) == len(before) + 1
    assert after[after["session"] == growing]["name"].iloc[-1] == "later"
    now = _kept(store)
    assert now[growing][0] > kept[growing][0] and now[steady] == kept[steady]


def test_cost_is_priced_again_on_every_read(tmp_path: Path) -> None:
    store, _, _ = _stored(tmp_path, recorded())
    book = PriceBook()
    before = history_frame(store, book)
    book.set_price("house-model-7b", input_per_mtok=1.0, output_per_mtok=2.0)
    after = history_frame(store, book)
    house = after["model"] == "house-model-7b"
    assert before.loc[house, "cost_usd"].isna().all()
    tokens = after.loc[house, ["input_tokens", "output_tokens"]].astype(float)
    assert np.allclose(after.loc[house, "cost_usd"],
                       (tokens["input_tokens"] * 1.0 + tokens["output_tokens"] * 2.0) / 1e6)
    assert after.attrs["unpriced_models"] == []
    assert after.loc[~house, "cost_usd"].equals(before.loc[~house, "cost_usd"])


@pytest.mark.parametrize("spoil", ["UPDATE frames SET data = X'789c00'",
                                   f"UPDATE frames SET format = {columns.FORMAT + 1}"])
def test_kept_columns_that_cannot_be_read_are_built_again(tmp_path: Path, spoil: str
                                                          ) -> None:
    store, (session,), _ = _stored(tmp_path, recorded())
    first = history_frame(store, PriceBook())
    with sqlite3.connect(store.path) as conn:
        conn.execute(spoil)
    pd.testing.assert_frame_equal(history_frame(store, PriceBook()), first)
    assert _kept(store)[session][1] == columns.FORMAT


def _two_notebooks(tmp_path: Path) -> Store:
    """A store with a session of the recorded spans from each of two notebooks."""
    store = Store(tmp_path / "s.sqlite")
    for notebook in ("/a.ipynb", "/b.ipynb"):
        session = store.begin_session(time.time_ns(), None, notebook)
        StoreWriter(recorded().collector, store, session, content=lambda: True,
                    interval_s=3600).flush()
    return store


def test_since_until_and_notebook_pick_rows(tmp_path: Path) -> None:
    store = _two_notebooks(tmp_path)
    every = history_frame(store, PriceBook())
    assert set(history_frame(store, PriceBook(), notebook="/a.ipynb")["notebook"]) == \
        {"/a.ipynb"}
    middle = every["start_time"].sort_values().iloc[len(every) // 2]
    later = history_frame(store, PriceBook(), since=middle)
    assert len(later) == int((every["start_time"] >= middle).sum()) and len(later) < len(every)
    assert history_frame(store, PriceBook(), until="1970-01-02").empty
    with pytest.raises(ValueError, match="not a time"):
        history_frame(store, PriceBook(), since="last tuesday-ish")


def test_an_empty_store_gives_the_columns_and_no_rows(tmp_path: Path) -> None:
    df = history_frame(Store(tmp_path / "s.sqlite"), PriceBook())
    assert df.empty and list(df.columns) == [*SCALAR, "session", "notebook"]


def test_the_store_of_version_1_has_history(tmp_path: Path) -> None:
    from conftest import ROOT

    path = tmp_path / "old.sqlite"
    path.write_bytes((ROOT / "tests" / "fixtures" / "store-v1.sqlite").read_bytes())
    df = history_frame(Store(path), PriceBook())
    assert len(df) == 9 and set(df["notebook"]) == {"/fixtures/v1.ipynb"}


# -- the columns' format ---------------------------------------------------------------


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pick = rng.random(n)
    return pd.DataFrame({
        "id": pd.array([f"{x:016x}" if p > 0.1 else None
                        for x, p in zip(rng.integers(0, 2**62, n), pick, strict=True)],
                       dtype="string"),
        "model": pd.array(rng.choice(["gpt-4o", "o3", "é\udcff"], n), dtype="string"),
        "kind": pd.Categorical(rng.choice(["llm", "tool"], n),
                               categories=["llm", "tool", "cell"]),
        "tokens": pd.array([int(x) if p > 0.3 else None for x, p in
                            zip(rng.integers(-5, 2**40, n), pick, strict=True)],
                           dtype="Int64"),
        "small": pd.array(rng.integers(0, 100, n), dtype="Int64"),
        "stream": pd.array([bool(p > 0.5) if p > 0.2 else None for p in pick],
                           dtype="boolean"),
        "nested": pick > 0.7,
        "ms": np.where(pick > 0.4, pick * 1000, np.nan),
        "never": np.full(n, np.nan),
        "start": pd.to_datetime(rng.integers(0, 2**60, n), utc=True).as_unit("ns"),
        "note": pd.array([None] * n, dtype="string"),
    })


@pytest.mark.parametrize("sizes", [[0], [1], [5, 0, 300], [1000, 1000]])
def test_columns_come_back_as_they_were_kept(sizes: list[int]) -> None:
    frames = [_frame(n, seed) for seed, n in enumerate(sizes)]
    back = columns.frame([columns.parts(columns.encode(f)) for f in frames])
    pd.testing.assert_frame_equal(back, pd.concat(frames, ignore_index=True))


def test_a_part_without_a_column_has_it_missing() -> None:
    old, new = _frame(3, 1).drop(columns=["tokens", "model"]), _frame(4, 2)
    back = columns.frame([columns.parts(columns.encode(new)), columns.parts(
        columns.encode(old))])
    assert back["tokens"].iloc[4:].isna().all() and back["model"].iloc[4:].isna().all()
    assert back["tokens"].iloc[:4].equals(new["tokens"])


def test_only_scalar_columns_are_kept() -> None:
    df = _frame(3, 0).assign(attributes=[{"a": 1}] * 3, naive=pd.Timestamp("2026-01-01"))
    assert "attributes" not in columns.keepable(df) and "naive" not in columns.keepable(df)


@pytest.mark.parametrize("damage", [
    lambda b: b[:-3], lambda b: b"\x00" + b, lambda b: b"",
    lambda b: zlib.compress(b"\x05\x00\x00\x00{}xyz"),
    lambda b: zlib.compress(zlib.decompress(b).replace(b'"format":1', b'"format":9')),
    lambda b: zlib.compress(zlib.decompress(b).replace(b'"<i8"', b'"<c16"')),
    lambda b: zlib.compress(zlib.decompress(b)[:-1]),
])
def test_a_damaged_blob_is_an_error_not_a_crash(damage: object) -> None:
    blob = columns.encode(_frame(50, 3))
    with pytest.raises(columns.ColumnsError):
        columns.parts(damage(blob))  # type: ignore[operator]


def test_summary_and_the_charts_take_a_history_frame(tmp_path: Path) -> None:
    from llmtrace_nb._shape.frames import llm_calls, summary
    from llmtrace_nb.views import charts

    store = _two_notebooks(tmp_path)
    df = history_frame(store, PriceBook())
    counted = df[df["kind"].isin(["llm", "embedding"]) & df["duplicate_of"].isna()]
    table = summary(llm_calls(df), by=["notebook", "model"])  # what summary(spans=) runs
    assert int(table["calls"].sum()) == len(counted)
    bars = charts.cost_by(df, by="notebook")
    (bar,) = [t for t in bars.data if t.type == "bar"]
    assert list(bar.x) == ["/a.ipynb", "/b.ipynb"] or list(bar.x) == ["/b.ipynb", "/a.ipynb"]
    assert sum(bar.y) == pytest.approx(counted["cost_usd"].sum())
    for figure in (charts.latency(df, by="notebook"), charts.tokens_vs_latency(df),
                   charts.timeline(df)):
        assert figure.data
        assert not any("no data" in (note.text or "") for note in figure.layout.annotations)
