"""Judgements: evaluate(), evaluate_calls(), evaluations_df(), summary's score columns —
on real calls through the openai client to the demo server, in traced cells."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._capture.judge import (
    EVALUATION,
    EVALUATION_NAME,
    EXPLANATION,
    RESPONSE_ID,
    SCORE_LABEL,
    SCORE_VALUE,
    is_negative,
)
from llmtrace_nb.demo import DemoServer

from conftest import run

CELL = """\
%%trace capitals
answers = []
for city in ["France", "Spain", "Italy"]:
    r = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Capital of {city}?"}])
    answers.append(r.choices[0].message.content)
"""


@pytest.fixture
def judged(shell: InteractiveShell, demo_server: DemoServer) -> InteractiveShell:
    demo_server.set_latency(0.0)
    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url, api_key="sk-demo",
                                            max_retries=0)
    result, _ = run(shell, CELL)
    assert result.success, result.error_in_exec
    return shell


def test_a_judgement_is_a_child_span_of_the_call_with_the_semconv_attributes(
        judged: InteractiveShell) -> None:
    calls = llmtrace_nb.llm_calls_df()
    second = calls.iloc[1]
    own = llmtrace_nb.evaluate(second, "exact_match", score=0.0, label="fail",
                               explanation="said Madrid twice")
    spans = llmtrace_nb.spans_df()
    (row,) = spans[spans["span_id"] == own].itertuples()
    assert row.name == EVALUATION and row.parent_span_id == second["span_id"]
    assert row.trace_id == second["trace_id"] and row.kind == "other"
    assert row.duration_ms == 0 and row.cell == second["cell"]  # the judged call's cell
    attrs = row.attributes
    assert attrs[EVALUATION_NAME] == "exact_match" and attrs[SCORE_VALUE] == 0.0
    assert attrs[SCORE_LABEL] == "fail" and attrs[EXPLANATION] == "said Madrid twice"
    assert attrs[RESPONSE_ID] == second["attributes"]["gen_ai.response.id"]
    # it counts as no call: the totals stay those of the three calls
    assert len(llmtrace_nb.llm_calls_df()) == 3
    assert int(llmtrace_nb.cells_df()["llm_calls"].iloc[-1]) == 3


def test_evaluations_df_joins_the_call_and_summary_gains_scores(
        judged: InteractiveShell) -> None:
    calls = llmtrace_nb.llm_calls_df()
    llmtrace_nb.evaluate(calls.iloc[0], "exact_match", score=1.0, label="pass")
    llmtrace_nb.evaluate(calls.iloc[1], "exact_match", score=0.0, label="fail")
    llmtrace_nb.evaluate(None, "feedback", label="thumbs_down", explanation="too long")
    df = llmtrace_nb.evaluations_df()
    assert list(df["evaluation"]) == ["exact_match", "exact_match", "feedback"]
    assert list(df["span_id"]) == [calls["span_id"].iloc[i] for i in (0, 1, 2)]
    assert list(df["negative"]) == [False, True, True]
    assert (df["model"] == calls["model"].iloc[0]).all()
    assert df["cost_usd"].tolist() == pytest.approx(calls["cost_usd"].tolist())
    assert df["cell_name"].eq("capitals").all()
    table = llmtrace_nb.summary()
    assert table["exact_match_score"].iloc[0] == pytest.approx(0.5)
    assert table["exact_match_pass_rate"].iloc[0] == pytest.approx(0.5)
    assert table["feedback_pass_rate"].iloc[0] == pytest.approx(0.0)
    assert "feedback_score" not in table.columns  # labels only: no mean score


def test_a_cell_can_be_judged_by_number_name_or_view(judged: InteractiveShell) -> None:
    cell = llmtrace_nb.cells_df().iloc[-1]
    for target in (int(cell["cell"]), "capitals", llmtrace_nb.view("capitals")):
        llmtrace_nb.evaluate(target, "useful", score=4)
    df = llmtrace_nb.evaluations_df()
    assert len(df) == 3 and set(df["kind"]) == {"cell"}
    assert set(df["span_id"]) == {llmtrace_nb.spans_df().query("kind == 'cell'")
                                  ["span_id"].iloc[-1]}


def test_evaluate_calls_runs_a_python_evaluator_over_every_call(
        judged: InteractiveShell) -> None:
    def mentions_capital(row: object) -> tuple[float, str]:
        text = row["output_messages"][0]["content"]  # type: ignore[index]
        return float("Capital" in text), f"{len(text)} characters"

    done = llmtrace_nb.evaluate_calls(mentions_capital)
    assert len(done) == 3 and set(done["evaluation"]) == {"mentions_capital"}
    assert done["explanation"].str.endswith("characters").all()
    assert done["score"].tolist() == [1.0, 1.0, 1.0]
    labels = llmtrace_nb.evaluate_calls(lambda row: "pass", name="labelled",
                                        calls=llmtrace_nb.llm_calls_df().head(2))
    assert list(labels["label"]) == ["pass", "pass"] and labels["score"].isna().all()
    assert llmtrace_nb.evaluate_calls(lambda row: None).empty  # None: no judgement


@pytest.mark.parametrize(("args", "error"), [
    (("", 1.0, None, None), ValueError), ((None, 1.0, None, None), ValueError),
    (("x", None, None, None), ValueError), (("x", float("nan"), None, None), ValueError),
    (("x", True, None, None), TypeError), (("x", "high", None, None), TypeError),
    (("x", 1.0, 3, None), TypeError), (("x", 1.0, None, {"why": 1}), TypeError),
])
def test_bad_judgements_are_refused_with_a_reason(judged: InteractiveShell,
                                                  args: tuple[object, ...],
                                                  error: type[Exception]) -> None:
    name, score, label, explanation = args
    with pytest.raises(error):
        llmtrace_nb.evaluate(None, name, score=score, label=label,  # type: ignore[arg-type]
                             explanation=explanation)  # type: ignore[arg-type]
    assert llmtrace_nb.evaluations_df().empty


def test_an_unknown_target_is_a_lookup_error(judged: InteractiveShell) -> None:
    with pytest.raises(LookupError):
        llmtrace_nb.evaluate("00000000000000ff", "x", score=1)
    with pytest.raises(LookupError):
        llmtrace_nb.evaluate("no such cell", "x", score=1)
    with pytest.raises(TypeError):
        llmtrace_nb.evaluate(3.5, "x", score=1)


def test_judgements_round_trip_through_a_file(judged: InteractiveShell, tmp_path: Path
                                              ) -> None:
    llmtrace_nb.evaluate(None, "feedback", score=-1, label="thumbs_down",
                         explanation="wrong")
    before = llmtrace_nb.evaluations_df()
    path = tmp_path / "run.jsonl"
    llmtrace_nb.save(path)
    assert "gen_ai.evaluation.name" in path.read_text()
    llmtrace_nb.disable()
    llmtrace_nb.enable()
    llmtrace_nb.load(path)
    after = llmtrace_nb.evaluations_df()
    columns = ["evaluation", "score", "label", "explanation", "negative", "span_id", "model"]
    assert after[columns].equals(before[columns])


def test_content_off_keeps_the_score_and_drops_the_explanation(
        judged: InteractiveShell) -> None:
    llmtrace_nb.enable(capture_content=False)
    llmtrace_nb.evaluate(None, "feedback", label="thumbs_down", explanation="SECRET-WHY")
    df = llmtrace_nb.evaluations_df()
    assert df["label"].iloc[-1] == "thumbs_down" and df["explanation"].isna().all()
    assert "SECRET-WHY" not in json.dumps(llmtrace_nb.spans_df()["attributes"].tolist(),
                                          default=str)


def test_negative_means_a_score_of_zero_or_less_or_a_failing_label() -> None:
    assert is_negative(0.0, None) and is_negative(-2, "pass") and is_negative(None, "Fail")
    assert is_negative(None, "thumbs_down") and not is_negative(1.0, "thumbs_up")
    assert not is_negative(None, "pass") and not is_negative(0.5, None)
    assert is_negative(None, "meh", negative_labels={"meh"})


def test_a_judgement_given_in_another_traced_cell_stays_with_the_call(
        judged: InteractiveShell) -> None:
    judged.user_ns["llmtrace_nb"] = llmtrace_nb
    result, _ = run(judged, "%%trace later\nllmtrace_nb.evaluate(None, 'feedback', "
                            "label='thumbs_up')")
    assert result.success, result.error_in_exec
    df = llmtrace_nb.evaluations_df()
    assert list(df["cell_name"]) == ["capitals"]
    spans = llmtrace_nb.spans_df()
    judgement = spans[spans["name"] == "gen_ai.evaluation.result"]
    assert list(judgement["cell_name"]) == ["capitals"]
    assert not spans[spans["cell_name"] == "later"]["name"].eq(
        "gen_ai.evaluation.result").any()


def test_views_show_judgements_on_their_span(judged: InteractiveShell) -> None:
    from llmtrace_nb._shape.schema import validate

    calls = llmtrace_nb.llm_calls_df()
    payload = '<img src=x onerror="alert(1)">'
    llmtrace_nb.evaluate(calls.iloc[0], "exact_match", score=1, label="pass")
    llmtrace_nb.evaluate(calls.iloc[1], "feedback", label="thumbs_down",
                         explanation=payload + " wrong")
    view = llmtrace_nb.view("capitals")
    doc = view.document
    validate(doc)
    assert EVALUATION not in [s["name"] for s in doc["spans"]]  # not rows of their own
    assert doc["totals"]["spans"] == 4  # the cell and its three calls
    by_id = {s["span_id"]: s for s in doc["spans"]}
    assert by_id[calls["span_id"].iloc[0]]["evaluations"] == [
        {"name": "exact_match", "score": 1.0, "label": "pass", "negative": False}]
    assert by_id[calls["span_id"].iloc[1]]["evaluations"] == [
        {"name": "feedback", "label": "thumbs_down", "explanation": payload + " wrong",
         "negative": True}]
    assert "evaluations" not in by_id[calls["span_id"].iloc[2]]
    html = view.html()
    assert "✓ exact_match" in html and "✗ feedback" in html
    assert "2 judgements" in html and "1 negative" in html
    assert payload not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
