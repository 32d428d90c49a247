"""Forwarding to a real Arize Phoenix on loopback, read back with Phoenix's own client.

Phoenix runs from a virtual environment of its own (see phoenix_server.py). Its ingestion
is asynchronous: the test polls with a deadline instead of asserting at once.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator

import openai
import pytest
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb

from conftest import run
from phoenix_server import phoenix_python, serve

READ_BACK = """
import json, sys
from phoenix.client import Client
df = Client(base_url=sys.argv[1]).spans.get_spans_dataframe(project_identifier="default")
cols = [c for c in df.columns if c in (
    "context.span_id", "parent_id", "name", "span_kind", "attributes.llm.token_count.prompt",
    "attributes.llm.token_count.completion") or c.startswith("attributes.gen_ai")]
print(json.dumps(df[cols].astype(object).where(df[cols].notna(), None).to_dict("records"),
                 default=str))
"""


def read_back(phoenix: str, done: Callable[[list[dict]], bool]) -> list[dict]:
    """Phoenix's spans, once ``done`` says they are all there (its ingestion is
    asynchronous), or at the deadline."""
    deadline = time.monotonic() + 120
    theirs: list[dict] = []
    while time.monotonic() < deadline:
        proc = subprocess.run([str(phoenix_python()), "-c", READ_BACK, phoenix],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        theirs = json.loads(proc.stdout.strip().splitlines()[-1])
        if done(theirs):
            break
        time.sleep(2)
    return theirs


def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("phoenix")) as url:
        yield url


@pytest.fixture
def forwarding(shell: InteractiveShell, demo_server: object, phoenix: str
               ) -> Iterator[InteractiveShell]:
    """The shell with a client of the demo server, forwarding to Phoenix."""
    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url,  # type: ignore[attr-defined]
                                            api_key="k")
    run(shell, f"%llmtrace forward {phoenix}/v1/traces")
    try:
        yield shell
    finally:
        run(shell, "%llmtrace forward off")


def test_spans_reach_phoenix(forwarding: InteractiveShell, phoenix: str) -> None:
    run(forwarding, "%%trace to phoenix --quiet\n"
                    "for q in ['one', 'two words', 'three more words']:\n"
                    "    client.chat.completions.create(model='gpt-4o-mini',\n"
                    "        messages=[{'role': 'user', 'content': q}])")
    ours = llmtrace_nb.spans_df().set_index("span_id")
    theirs = read_back(phoenix, lambda found: len(found) >= len(ours))
    assert len(theirs) == len(ours) == 4
    for span in theirs:
        row = ours.loc[span["context.span_id"]]
        assert span["name"] == row["name"]
        if row["kind"] == "llm":
            assert span["attributes.llm.token_count.prompt"] == row["input_tokens"]
            assert span["attributes.llm.token_count.completion"] == row["output_tokens"]


def test_a_judgement_reaches_phoenix_under_its_call(forwarding: InteractiveShell,
                                                    phoenix: str) -> None:
    """Given after the cell ended, a thumbs down arrives beside the call it judges."""
    run(forwarding, "%%trace judged in phoenix --quiet\n"
                    "client.chat.completions.create(model='gpt-4o-mini',\n"
                    "    messages=[{'role': 'user', 'content': 'capital of France?'}])")
    call = llmtrace_nb.llm_calls_df().iloc[-1]
    own = llmtrace_nb.evaluate(call, "feedback", score=0.0, label="thumbs_down",
                               explanation="too vague")
    found = read_back(phoenix, lambda found: any(s["context.span_id"] == own for s in found))
    judgement = next(s for s in found if s["context.span_id"] == own)
    assert judgement["name"] == "gen_ai.evaluation.result"
    assert judgement["parent_id"] == call["span_id"]
    assert judgement["span_kind"] == "EVALUATOR"
    # Phoenix nests dotted keys, partly: {"evaluation.score": {"label": …}, …}
    assert flat(judgement["attributes.gen_ai"]) == {
        "evaluation.name": "feedback", "evaluation.score.label": "thumbs_down",
        "evaluation.score.value": 0.0, "evaluation.explanation": "too vague",
        "response.id": call["attributes"]["gen_ai.response.id"]}
