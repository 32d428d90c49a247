"""llmtrace_nb.span: context manager and decorator, sync and async."""

from __future__ import annotations

import asyncio
import json

import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb import span

from conftest import run


def test_context_manager_kinds_and_attributes(shell: InteractiveShell) -> None:
    with span("retrieve", kind="retrieval", query="capital of France", top_k=3,
              ids=["a", "b"], filters={"lang": "en"}) as s:
        s.set_attribute("hits", 2)
    row = llmtrace_nb.spans_df().iloc[0]
    assert row["name"] == "retrieve" and row["kind"] == "retrieval"
    attrs = row["attributes"]
    assert attrs["query"] == "capital of France" and attrs["top_k"] == 3
    assert list(attrs["ids"]) == ["a", "b"] and json.loads(attrs["filters"]) == {"lang": "en"}
    assert attrs["hits"] == 2 and attrs["openinference.span.kind"] == "RETRIEVER"


def test_decorated_tool_records_call_and_result(shell: InteractiveShell) -> None:
    @span("get_weather", kind="tool")
    def get_weather(city: str, unit: str = "C") -> dict:
        return {"city": city, "temp": 21, "unit": unit}

    assert get_weather("Paris") == {"city": "Paris", "temp": 21, "unit": "C"}
    row = llmtrace_nb.spans_df().iloc[0]
    assert row["kind"] == "tool"
    assert row["input_messages"][0]["tool_calls"] == [
        {"id": None, "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert json.loads(row["output_messages"][0]["content"]) == {
        "city": "Paris", "temp": 21, "unit": "C"}


def test_async_decorator_and_nesting(shell: InteractiveShell) -> None:
    @span("lookup", kind="tool")
    async def lookup(q: str) -> str:
        await asyncio.sleep(0.01)
        return q.upper()

    @span("agent step", kind="agent")
    async def step() -> list[str]:
        return list(await asyncio.gather(lookup("a"), lookup("b")))

    assert asyncio.run(step()) == ["A", "B"]
    df = llmtrace_nb.spans_df().set_index("span_id")
    agent = df[df["kind"] == "agent"]
    tools = df[df["kind"] == "tool"]
    assert len(agent) == 1 and len(tools) == 2
    assert (tools["parent_span_id"] == agent.index[0]).all()
    assert sorted(m[0]["content"] for m in tools["output_messages"]) == ["A", "B"]


def test_errors_mark_the_span_and_propagate(shell: InteractiveShell) -> None:
    @span("flaky", kind="tool")
    def flaky() -> None:
        raise TimeoutError("slow backend")

    with pytest.raises(TimeoutError):
        flaky()
    with pytest.raises(KeyError), span("step"):
        raise KeyError("k")
    df = llmtrace_nb.spans_df()
    assert df["status"].tolist() == ["error", "error"]
    assert df["error_type"].tolist() == ["TimeoutError", "KeyError"]


def test_no_content_recorded_when_capture_is_off(shell: InteractiveShell) -> None:
    run(shell, "%llmtrace content off")

    @span("secret_tool", kind="tool")
    def secret_tool(text: str) -> str:
        return "the answer"

    secret_tool("private words")
    raw = llmtrace_nb.spans_df().iloc[0]["attributes"]
    assert "private words" not in json.dumps(raw) and "the answer" not in json.dumps(raw)


def test_manual_spans_in_a_traced_cell(shell: InteractiveShell) -> None:
    result, _ = run(shell, "%%trace --quiet\n"
                           "import llmtrace_nb\n"
                           "with llmtrace_nb.span('plan', kind='agent'):\n"
                           "    with llmtrace_nb.span('search', kind='tool'):\n"
                           "        pass")
    df = llmtrace_nb.spans_df().set_index("name")
    assert df.loc["plan", "parent_span_id"] == df.loc[f"cell [{result.execution_count}]",
                                                      "span_id"]
    assert df.loc["search", "parent_span_id"] == df.loc["plan", "span_id"]
    assert (df["cell"] == result.execution_count).all()


@pytest.mark.parametrize(("args", "kwargs"), [(("",), {}), (("x",), {"kind": "nope"})])
def test_bad_arguments(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        span(*args, **kwargs)
