"""compare(): two prompt versions through the real client and the demo server, side by
side — totals, per model, calls paired with word diffs, judgements, the frame, the
bundle."""

from __future__ import annotations

from pathlib import Path

import nbformat
import openai
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._shape.compare import word_diff
from llmtrace_nb.demo import DemoServer
from llmtrace_nb.views.compare import MIME_TYPE

from conftest import run

RUN = """\
%%trace prompt {version} --tag prompt={version}
for q in [{questions}]:
    client.chat.completions.create(model="{model}", messages=[
        {{"role": "system", "content": "{system}"}}, {{"role": "user", "content": q}}])
"""


@pytest.fixture
def two_runs(shell: InteractiveShell, demo_server: DemoServer) -> InteractiveShell:
    demo_server.set_latency(0.0)
    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url, api_key="sk-demo",
                                            max_retries=0)
    for version, model, system, questions in (
            ("v1", "gpt-4o-mini", "Answer briefly.",
             '"Capital of France?", "Capital of Spain?"'),
            ("v2", "gpt-4o", "Answer in one word, please.",
             '"The capital of France, in one word?", "Capital of Spain?", '
             '"Capital of Italy?"')):
        result, _ = run(shell, RUN.format(version=version, model=model, system=system,
                                          questions=questions))
        assert result.success, result.error_in_exec
    return shell


def test_totals_and_models_side_by_side(two_runs: InteractiveShell) -> None:
    cmp = llmtrace_nb.compare("prompt v1", "prompt v2")
    data = cmp.data
    assert data["labels"] == ["prompt v1", "prompt v2"]
    calls = llmtrace_nb.llm_calls_df()
    for label, side in zip(data["labels"], data["totals"], strict=True):
        mine = calls[calls["cell_name"] == label]
        assert side["calls"] == len(mine)
        assert side["input_tokens"] == mine["input_tokens"].sum()
        assert side["cost_usd"] == pytest.approx(mine["cost_usd"].sum())
        assert side["latency_p50_ms"] == pytest.approx(mine["duration_ms"].median())
    assert [m["model"] for m in data["models"]] == sorted(set(calls["model"]))
    frame = cmp.frame
    row = frame.loc[("(all)", "calls")]
    assert (row["prompt v1"], row["prompt v2"]) == (2, 3)
    assert row["delta prompt v2"] == 1 and row["ratio prompt v2"] == pytest.approx(1.5)
    cost = frame.loc[("(all)", "cost_usd")]
    assert cost["delta prompt v2"] == pytest.approx(cost["prompt v2"] - cost["prompt v1"])


def test_calls_are_paired_in_order_with_a_word_diff(two_runs: InteractiveShell) -> None:
    data = llmtrace_nb.compare("prompt v1", "prompt v2").data
    assert len(data["pairs"]) == 3
    first = data["pairs"][0]
    a, b = first["calls"]
    assert a["model"].startswith("gpt-4o-mini") and b["model"].startswith("gpt-4o-2")
    diff = first["diffs"][0]
    assert {op for op, _ in diff} == {"=", "-", "+"}
    assert "".join(w for op, w in diff if op != "+") == a["output"]
    assert "".join(w for op, w in diff if op != "-") == b["output"]
    last = data["pairs"][2]
    assert last["calls"][0] is None and last["calls"][1]["model"].startswith("gpt-4o")


def test_sides_by_tag_view_number_and_frame(two_runs: InteractiveShell) -> None:
    by_name = llmtrace_nb.compare("prompt v1", "prompt v2").data["totals"]
    by_tag = llmtrace_nb.compare("prompt=v1", "prompt=v2").data["totals"]
    by_view = llmtrace_nb.compare(llmtrace_nb.view("prompt v1"),
                                  llmtrace_nb.view("prompt v2")).data["totals"]
    cells = llmtrace_nb.cells_df()
    by_number = llmtrace_nb.compare(*[int(c) for c in cells["cell"]]).data["totals"]
    spans = llmtrace_nb.spans_df()
    by_frame = llmtrace_nb.compare(spans[spans["cell_name"] == "prompt v1"],
                                   spans[spans["cell_name"] == "prompt v2"],
                                   labels=["a", "b"])
    assert by_frame.data["labels"] == ["a", "b"]
    for other in (by_tag, by_view, by_number, by_frame.data["totals"]):
        assert [t["calls"] for t in other] == [t["calls"] for t in by_name]
        assert [t["cost_usd"] for t in other] == pytest.approx([t["cost_usd"]
                                                                for t in by_name])
    same = llmtrace_nb.compare("prompt v1", "prompt v1").data["labels"]
    assert same == ["prompt v1", "prompt v1 (2)"]


def test_judgements_are_shown_per_side(two_runs: InteractiveShell) -> None:
    calls = llmtrace_nb.llm_calls_df()
    for _, row in calls.iterrows():
        llmtrace_nb.evaluate(row, "one_word", score=float(row["cell_name"] == "prompt v2"))
    data = llmtrace_nb.compare("prompt v1", "prompt v2").data
    (v1,), (v2,) = data["judgements"]
    assert (v1["name"], v1["count"], v1["mean_score"], v1["pass_rate"]) == (
        "one_word", 2, 0.0, 0.0)
    assert (v2["count"], v2["mean_score"], v2["pass_rate"]) == (3, 1.0, 1.0)


def test_the_bundle_is_data_html_and_text_with_untrusted_text_escaped(
        two_runs: InteractiveShell) -> None:
    calls = llmtrace_nb.llm_calls_df()
    payload = '<img src=x onerror="alert(1)">'
    cmp = llmtrace_nb.compare("prompt v1", "prompt v2", labels=[payload, "v2"])
    bundle = cmp._repr_mimebundle_()
    assert set(bundle) == {MIME_TYPE, "text/html", "text/plain"}
    html = bundle["text/html"]
    assert payload not in html and "&lt;img src=x" in html
    assert "<script" not in html and "<del>" in html and "<ins>" in html
    text = bundle["text/plain"]
    assert "LLM calls" in text and "cost" in text and "(1.50×)" in text
    assert len(calls) == 5


def test_calls_can_be_paired_by_span_name(two_runs: InteractiveShell) -> None:
    # a third run looks a word up first: in order, its calls would pair chat with embedding
    result, _ = run(two_runs, "%%trace prompt v3\n"
                    "client.embeddings.create(model='text-embedding-3-small', input='France')\n"
                    "for q in ['Capital of France?', 'Capital of Spain?']:\n"
                    "    client.chat.completions.create(model='gpt-4o-mini', messages=[\n"
                    "        {'role': 'user', 'content': q}])")
    assert result.success, result.error_in_exec
    in_order = llmtrace_nb.compare("prompt v1", "prompt v3").data
    assert in_order["paired_by"] == "order"
    assert [c["name"] for c in in_order["pairs"][0]["calls"]] == [
        "openai.chat", "openai.embeddings"]
    cmp = llmtrace_nb.compare("prompt v1", "prompt v3", pair="name")
    data = cmp.data
    assert data["paired_by"] == "name"
    lined = [(p["name"], p["nth"], [c and c["name"] for c in p["calls"]])
             for p in data["pairs"]]
    assert lined == [("openai.chat", 1, ["openai.chat", "openai.chat"]),
                     ("openai.chat", 2, ["openai.chat", "openai.chat"]),
                     ("openai.embeddings", 1, [None, "openai.embeddings"])]
    first = data["pairs"][0]
    assert first["diffs"][0] == word_diff(first["calls"][0]["output"],
                                          first["calls"][1]["output"])
    html = cmp.html()
    assert "calls, paired by span name" in html and "openai.chat 2: " in html
    with pytest.raises(ValueError, match="pair must be one of"):
        llmtrace_nb.compare("prompt v1", "prompt v3", pair="model")


def test_bad_sides_say_why(two_runs: InteractiveShell) -> None:
    with pytest.raises(LookupError):
        llmtrace_nb.compare("prompt v1", "no such cell")
    with pytest.raises(LookupError):
        llmtrace_nb.compare("prompt=v1", "prompt=v9")
    with pytest.raises(TypeError):
        llmtrace_nb.compare("prompt v1", 2.5)
    with pytest.raises(ValueError):
        llmtrace_nb.compare("prompt v1", "prompt v2", labels=["one"])


@pytest.mark.parametrize(("a", "b"), [("", ""), ("one two", "one two"), ("a b c", "a x c"),
                                      ("  lead\nand trail  ", "lead\nand  trail "),
                                      ("é\udcff x", "x é")])
def test_word_diff_joins_back_to_both_texts(a: str, b: str) -> None:
    ops = word_diff(a, b)
    assert "".join(w for op, w in ops if op != "+") == a
    assert "".join(w for op, w in ops if op != "-") == b
    assert all(op in "=-+" for op, _ in ops)


def test_a_frame_side_with_no_calls_compares_as_zero(two_runs: InteractiveShell) -> None:
    empty = llmtrace_nb.spans_df().iloc[0:0]
    data = llmtrace_nb.compare(empty, "prompt v1").data
    assert data["totals"][0]["calls"] == 0 and data["totals"][0]["cost_usd"] == 0.0
    assert isinstance(llmtrace_nb.compare(empty, "prompt v1").frame, pd.DataFrame)


def test_runs_loaded_from_a_file_or_a_notebook_compare_as_they_ran(
        two_runs: InteractiveShell, tmp_path: Path) -> None:
    ran = llmtrace_nb.compare("prompt v1", "prompt v2").data["totals"]
    llmtrace_nb.save(tmp_path / "runs.jsonl")
    nb = nbformat.v4.new_notebook()
    for name in ("prompt v1", "prompt v2"):
        cell = nbformat.v4.new_code_cell(f"%%trace {name}")
        data = llmtrace_nb.view(name)._repr_mimebundle_()
        cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "runs.ipynb")
    for source in ("runs.jsonl", "runs.ipynb"):
        run(two_runs, "%llmtrace clear")
        llmtrace_nb.load(tmp_path / source)
        loaded = llmtrace_nb.compare("prompt v1", "prompt v2").data["totals"]
        for key in ("calls", "input_tokens", "output_tokens"):
            assert [t[key] for t in loaded] == [t[key] for t in ran], (source, key)
        assert [t["cost_usd"] for t in loaded] == pytest.approx([t["cost_usd"] for t in ran])
