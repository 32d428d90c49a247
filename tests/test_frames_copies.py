"""Frames are the caller's: nothing done to a returned frame reaches a later one.

The frame builder keeps its converted rows; each frame it hands out gets its own copy of
every column's array and of every dict and list in an object column (attributes,
messages, their tool calls and arguments), so editing one changes no later frame, nor
the derived frames, nor the views.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

import llmtrace_nb
from llmtrace_nb._capture import record
from llmtrace_nb._capture.collector import CellRef
from llmtrace_nb._shape import document, frames

from conftest import run
from spans import Recorder, openai_chat


def chat_with_tools() -> dict[str, Any]:
    attrs = openai_chat()
    attrs["gen_ai.output.messages"] = json.dumps([{
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                   "arguments": {"city": "Paris", "days": [1, 2]}}],
        "finish_reason": "tool_call",
    }])
    return attrs


def recorded() -> Recorder:
    rec = Recorder()
    cell = CellRef(number=1, name="cell [1]")
    rec.collector.register_cell(cell)
    rec.span("openai.chat", chat_with_tools(), cell=cell)
    rec.span("openai.chat", openai_chat("gpt-4o"), cell=cell, start=1_700_000_001_000_000_000)
    rec.span("tool", {"llmtrace.kind": "tool"}, cell=cell)
    return rec


def vandalize(df: pd.DataFrame) -> None:
    """Everything a caller might do to a frame in place, at every depth."""
    for attrs in df["attributes"]:
        if attrs:
            del attrs[next(iter(attrs))]
        attrs["x"] = 1
    for messages in (*df["input_messages"], *df["output_messages"]):
        for message in messages or ():
            message["content"] = "changed"
            for call in message.get("tool_calls") or ():
                call["name"] = "renamed"
                if isinstance(call["arguments"], dict):
                    call["arguments"]["city"] = "Lyon"
                    call["arguments"].setdefault("days", []).append(3)
        if messages is not None:
            messages.append({"role": "user", "content": "injected"})
    last = len(df) - 1
    df.loc[0, "model"] = "vandal"
    df.loc[last, "input_tokens"] = 999
    # pandas' Copy-on-Write does not guard a column's own array
    df["input_tokens"].array[0] = 777
    df["duration_ms"].array[0] = -1.0
    df["cost_usd"].array[last] = 123.0
    df["name"].array[0] = "zzz"
    df["kind"].array[0] = "tool"
    df["is_streaming"].array[0] = True
    df["start_time"].array[0] = pd.Timestamp("2000-01-01", tz="UTC")
    df.attrs["unpriced_models"].append("vandal")


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs


def test_editing_a_frame_changes_no_later_frame() -> None:
    rec = recorded()
    before = rec.frames.spans()
    reference = Recorder.__new__(Recorder)  # the same spans, converted by a fresh builder
    reference.frames = frames.FrameBuilder(rec.collector, rec.prices)
    vandalize(rec.frames.spans())
    assert_same(rec.frames.spans(), before)
    assert_same(rec.frames.spans(), reference.frames.spans())
    # the rows converted later too, and those of the incremental build
    rec.span("openai.chat", chat_with_tools(), start=1_700_000_002_000_000_000)
    vandalize(rec.frames.spans())
    vandalize(rec.frames.spans(capture_content=False).assign(
        input_messages=[[{"content": "x"}]] * 4,
        output_messages=[[{"tool_calls": [{"arguments": {"days": []}}]}]] * 4))
    later = rec.frames.spans()
    assert_same(later, frames.FrameBuilder(rec.collector, rec.prices).spans())
    assert later.output_messages[0][0]["tool_calls"][0]["arguments"] == {
        "city": "Paris", "days": [1, 2]}


def containers(value: Any) -> Iterator[int]:
    """ids of the dicts and lists in value (not of its leaves, which cannot change)."""
    if isinstance(value, dict):
        yield id(value)
        for v in value.values():
            yield from containers(v)
    elif isinstance(value, (list, tuple)):
        if isinstance(value, list):
            yield id(value)
        for v in value:
            yield from containers(v)


def test_two_frames_share_no_array_and_no_container() -> None:
    rec = recorded()
    one, two = rec.frames.spans(), rec.frames.spans()
    base, _, _ = rec.frames.base_frame()
    for column in one.columns:
        arrays = [one[column].array, two[column].array, base[column].array]
        buffers = [getattr(a, "_ndarray", None) if hasattr(a, "_ndarray") else
                   getattr(a, "_data", None) if hasattr(a, "_data") else
                   getattr(a, "codes", None) for a in arrays]
        for x, y in ((0, 1), (0, 2), (1, 2)):
            assert arrays[x] is not arrays[y], column
            if buffers[x] is not None:
                assert not np.shares_memory(buffers[x], buffers[y]), column
    for column in ("attributes", "input_messages", "output_messages"):
        held = [set(containers(df[column].tolist())) for df in (one, two, base)]
        assert held[0] and not held[0] & held[1] and not held[0] & held[2], column
        assert not held[1] & held[2], column


def test_nested_attribute_values_are_copied_all_the_way() -> None:
    """A file's kvlist attribute is a dict (the SDK allows none): copied to its leaves,
    content capture on or off."""
    rec = Recorder()
    span = ReadableSpan(
        name="loaded", context=SpanContext(1, 2, False, TraceFlags(1)),
        resource=Resource.get_empty(), start_time=1, end_time=2,
        attributes={"cfg": {"k": ["v"]}, "pairs": ({"a": 1},), "plain": "x"})
    rec.collector.add_entries([(span, None)], [])
    for content in (True, False):
        df = rec.frames.spans(capture_content=content)
        df.attributes[0]["cfg"]["k"].append("w")
        df.attributes[0]["cfg"]["new"] = 1
        df.attributes[0]["pairs"][0]["a"] = 2
        again = rec.frames.spans(capture_content=content).attributes[0]
        assert again["cfg"] == {"k": ["v"]} and again["pairs"] == ({"a": 1},)
        assert again.get("plain") == ("x" if content else None)  # text: content


def test_nested_rows_are_found() -> None:
    attrs = [{"a": "x", "t": ("p", 1)}, {"a": ("q", {"d": 1})}, {"b": [1]}, {}, {"c": None}]
    assert frames._nested(attrs).tolist() == [False, True, True, False, False]
    assert frames._nested([{"a": "x", "t": ("p", 1.5, True)}]).tolist() == [False]
    assert frames._nested([]).tolist() == []

    class Hashable:  # hashable, yet it can change
        def __init__(self) -> None:
            self.items: list[int] = []

    assert frames._nested([{"a": "x"}, {"o": Hashable()}]).tolist() == [False, True]
    assert frames._nested([{"t": (("p",), 1)}, {"t": ("p",)}]).tolist() == [False, False]
    assert frames._nested([{"t": (("p", Hashable()),)}]).tolist() == [True]


def test_own_copies_containers_and_shares_leaves() -> None:
    text = "a long prompt " * 100
    value = {"m": [{"content": text, "args": {"days": [1, 2]}}], "t": ("s", [1]), "s": {3}}
    copy = frames._own(value)
    assert copy == value
    assert set(containers(copy)).isdisjoint(containers(value))
    assert copy["m"][0]["content"] is text  # leaves are shared
    assert copy["s"] == {3} and copy["s"] is not value["s"]


def test_messages_of_any_shape_are_copied() -> None:
    column = np.empty(5, dtype=object)
    column[:] = [None, [{"role": "user", "content": "hi"}],
                 [{"role": "assistant", "tool_calls": [{"arguments": {"a": [1]}}]}],
                 "text", [["not", "a", "dict"]]]
    copy = frames._owned_objects(column)
    assert copy.tolist() == column.tolist()
    assert set(containers(copy.tolist())).isdisjoint(containers(column.tolist()))


def test_private_frame_is_the_caches_own() -> None:
    """keep_private frames (the trace document's) share the cache's objects: no copy per
    traced cell. The document copies what it keeps."""
    rec = recorded()
    private = rec.frames.spans(keep_private=True)
    base, _, _ = rec.frames.base_frame()
    assert private["attributes"].iloc[0] is base["attributes"].iloc[0]
    assert "_nested" in private.columns and "_nested" not in rec.frames.spans().columns


def test_public_frames_from_the_api_are_the_callers(shell: InteractiveShell) -> None:
    run(shell, "%%trace tools\n"
               "import json, llmtrace_nb\n"
               f"attrs = {chat_with_tools()!r}\n"
               "with llmtrace_nb.span('openai.chat', kind='llm', **attrs):\n"
               "    pass\n")
    spans = llmtrace_nb.spans_df()
    calls = llmtrace_nb.llm_calls_df()
    cells = llmtrace_nb.cells_df()
    summary = llmtrace_nb.summary()
    doc = llmtrace_nb.view().document
    for df in (llmtrace_nb.spans_df(), llmtrace_nb.llm_calls_df()):
        vandalize(df)
    cells_now = llmtrace_nb.cells_df()
    cells_now.loc[0, "tags"]["x"] = "y"
    cells_now["llm_calls"].array[0] = 99
    llmtrace_nb.summary()["calls"].array[0] = 99
    assert_same(llmtrace_nb.spans_df(), spans)
    assert_same(llmtrace_nb.llm_calls_df(), calls)
    assert_same(llmtrace_nb.cells_df(), cells)
    assert_same(llmtrace_nb.summary(), summary)
    assert llmtrace_nb.view().document == doc


@pytest.mark.parametrize("content", [True, False])
def test_the_frame_keeps_its_shape(content: bool) -> None:
    rec = recorded()
    df = rec.frames.spans(capture_content=content)
    assert list(df.columns) == list(frames.SPAN_COLUMNS)
    assert isinstance(df.index, pd.RangeIndex)
    if not content:
        assert df["input_messages"].isna().all() and df["output_messages"].isna().all()
        assert "gen_ai.input.messages" not in df.attributes[0]


def test_selected_rows_are_the_callers_and_shared_frames_copy_nothing() -> None:
    """llm_calls_df() copies only the calls (``where``); cells_df(), summary() and the
    status read a ``shared`` frame, which copies nothing and has only public columns."""
    rec = recorded()
    base, _, _ = rec.frames.base_frame()
    calls = rec.frames.spans(where=frames.is_call)
    assert calls["kind"].tolist() == ["llm", "llm"]
    assert_same(calls, frames.llm_calls(rec.frames.spans()))
    held = set(containers(calls["attributes"].tolist()))
    assert held and held.isdisjoint(containers(base["attributes"].tolist()))
    shared = rec.frames.spans(shared=True)
    assert list(shared.columns) == list(frames.SPAN_COLUMNS)
    assert shared["attributes"].iloc[0] is base["attributes"].iloc[0]
    hidden = rec.frames.spans(capture_content=False, shared=True)
    assert hidden["input_messages"].isna().all()
    assert "gen_ai.input.messages" not in hidden.attributes[0]


def test_the_cache_shares_the_spans_own_attributes_and_never_writes_them() -> None:
    """Memory: a converted row holds the span's own attribute dict, not a copy; the
    otel.status_code a call's frames show (its instrumentation left it unset) is added
    to the frames' copies and to the trace document, never to the span."""
    rec = recorded()
    base, snap, _ = rec.frames.base_frame()
    own = snap.columns(0)[record.ATTRS]
    chat = next(i for i, k in enumerate(base["kind"]) if k == "llm")
    assert base["attributes"][chat] is own[chat]
    assert bool(base["_status_unset"][chat])
    frame = rec.frames.spans()
    assert frame["attributes"][chat]["otel.status_code"] == "UNSET"
    assert rec.frames.spans(capture_content=False)["attributes"][chat][
        "otel.status_code"] == "UNSET"
    doc = document.build(rec.frames.spans(keep_private=True), name="c", cell=1)
    call = next(s for s in doc["spans"] if s["span_id"] == frame["span_id"][chat])
    assert call["attributes"]["otel.status_code"] == "UNSET"
    assert all("otel.status_code" not in a for a in own)
    assert "otel.status_code" not in base["attributes"][chat]


def test_a_span_is_copied_only_where_scrubbing_changes_it() -> None:
    rec = Recorder()
    secret = "http://me:sk-proj-abcdefghijklmnopqrstuvwxyz0123@host/v1/"
    rec.span("openai.chat", openai_chat() | {"gen_ai.openai.api_base": secret})
    rec.span("openai.chat", openai_chat())  # a URL, but no secret in it
    base, snap, _ = rec.frames.base_frame()
    own = snap.columns(0)[record.ATTRS]
    assert own[0]["gen_ai.openai.api_base"] == secret  # the span's own: untouched
    assert "sk-proj" not in base["attributes"][0]["gen_ai.openai.api_base"]
    assert base["attributes"][0] is not own[0] and base["attributes"][1] is own[1]


def test_the_cache_lets_go_of_messages_it_can_read_again() -> None:
    """Memory: a call's parsed messages are not kept when its own attributes hold them;
    every frame that shows messages reads them again, the same as first read."""
    rec = recorded()
    first = rec.frames.spans()
    base, _, _ = rec.frames.base_frame()
    calls = [i for i, k in enumerate(base["kind"]) if k == "llm"]
    assert base["_derived"][calls].all()
    # the last conversion's rows keep theirs (the next frame need not parse them again)
    assert base["input_messages"][calls].notna().all()
    rec.span("later", {"llmtrace.kind": "chain"}, start=1_700_000_003_000_000_000)
    base, _, _ = rec.frames.base_frame()
    assert base["input_messages"][calls].isna().all()
    assert_same(rec.frames.spans().iloc[:len(first)], first)
    assert first["input_messages"][calls[1]][1] == {"role": "user",
                                                     "content": "Capital of France?"}
    assert first["output_messages"][calls[0]][0]["tool_calls"][0]["arguments"] == {
        "city": "Paris", "days": [1, 2]}
    assert_same(rec.frames.spans(where=frames.is_call), frames.llm_calls(first))
    cell = rec.frames.spans(keep_private=True)
    assert cell["input_messages"][calls[1]] == first["input_messages"][calls[1]]
    doc = document.build(cell, name="c", cell=1)
    assert any(s.get("input_messages") for s in doc["spans"])
    # spans whose messages came from events, and tool spans, keep theirs
    rec.span("old", {"gen_ai.system": "openai", "gen_ai.request.model": "m"},
             events=[("gen_ai.content.prompt", 1)])
    rec.span("tool", {"llmtrace.kind": "tool", "gen_ai.tool.name": "t",
                      "gen_ai.tool.call.arguments": '{"a": 1}'})
    base, _, _ = rec.frames.base_frame()
    assert not base["_derived"].iloc[-2:].any()
