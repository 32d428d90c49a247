"""What a cell's view saves in the notebook: compact by default, full on request.

Compact leaves out of the trace document the attributes a span's fields already show
(its model, tokens, finish reasons, and the message attributes its messages were read
from), and the static HTML twin details the first calls and every error. Nothing the
view shows is lost: the fields and messages are still there, and whatever an attribute
says that no field does stays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from bs4 import BeautifulSoup
from IPython.core.interactiveshell import InteractiveShell

from llmtrace_nb._shape import document
from llmtrace_nb._shape.document import MIME_TYPE
from llmtrace_nb.views import html

from conftest import run
from run_notebook import execute
from spans import Recorder, openai_chat

SAID = {"gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
        "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.total_tokens",
        "gen_ai.usage.cache_read.input_tokens", "gen_ai.response.finish_reasons",
        "gen_ai.is_streaming", "gen_ai.input.messages", "gen_ai.output.messages"}


def built(attrs: dict[str, Any], output: str = "compact", error: str | None = None
          ) -> dict[str, Any]:
    rec = Recorder()
    rec.span("openai.chat", attrs, error=error)
    return document.build(rec.frames.spans(), name="c", cell=1, output=output)


def test_compact_leaves_out_what_the_fields_say_and_keeps_the_rest() -> None:
    span = built(openai_chat(cached=3))["spans"][0]
    assert set(span["attributes"]) == {"gen_ai.operation.name", "gen_ai.openai.api_base",
                                       "gen_ai.response.id", "otel.status_code"}
    # what they said is in the fields and messages
    assert (span["input_tokens"], span["cache_read_tokens"], span["model"]) == (
        100, 3, "gpt-4o-mini")
    assert [m["content"] for m in span["input_messages"]] == ["Be brief.", "Capital of France?"]
    full = built(openai_chat(cached=3), output="full")["spans"][0]
    assert set(full["attributes"]) > SAID
    ids = {"attributes", "span_id", "parent_span_id", "trace_id"}
    assert {k: v for k, v in full.items() if k not in ids} == {
        k: v for k, v in span.items() if k not in ids}


def test_an_attribute_that_disagrees_with_its_field_stays() -> None:
    """Two dialects with different numbers, a second message dialect, an unreadable
    message attribute: each says something no field shows."""
    attrs = openai_chat() | {"llm.usage.prompt_tokens": 99,  # the field says 100
                             "llm.input_messages.0.message.content": "other dialect"}
    kept = built(attrs)["spans"][0]["attributes"]
    assert kept["llm.usage.prompt_tokens"] == 99
    assert kept["llm.input_messages.0.message.content"] == "other dialect"
    assert "gen_ai.usage.input_tokens" not in kept
    # text that is not messages is shown as one, marked: the attribute is not needed
    span = built(openai_chat() | {"gen_ai.output.messages": "[{not json"})["spans"][0]
    assert span["output_messages"] == [{"role": "unknown", "content": "[{not json",
                                        "unreadable": True}]
    assert "gen_ai.output.messages" not in span["attributes"]
    assert span["attributes"]["llmtrace.unreadable"] == "messages"


def test_a_bad_output_is_an_error() -> None:
    with pytest.raises(ValueError, match="compact, full"):
        built(openai_chat(), output="tiny")


def many_calls(n: int, errors: tuple[int, ...] = ()) -> dict[str, Any]:
    rec = Recorder()
    for i in range(n):
        rec.span(f"call {i}", openai_chat(), start=1_700_000_000_000_000_000 + i * 1000,
                 error="Boom" if i in errors else None)
    return document.build(rec.frames.spans(), name="many", cell=1)


def detailed_rows(fragment: str) -> list[str]:
    soup = BeautifulSoup(fragment, "html.parser")
    return [next(t for t in r.summary.span.strings if t.strip()).strip()
            for r in soup.select("tr[class^=k-]")
            if r.select_one(".ms")]


def test_the_compact_twin_details_the_first_calls_and_every_error() -> None:
    doc = many_calls(60, errors=(45, 59))
    compact = html.render(doc)
    shown = detailed_rows(compact)
    assert shown == [f"call {i}" for i in range(html.COMPACT_DETAILS)] + ["call 45", "call 59"]
    footer = BeautifulSoup(compact, "html.parser").get_text()
    assert "compact output: messages and attributes of 48 spans" in footer
    assert "%llmtrace output full" in footer
    full = html.render(doc, "full")
    assert detailed_rows(full) == [f"call {i}" for i in range(60)]
    assert "compact output" not in full
    # a small cell loses nothing to compactness
    few = many_calls(5)
    assert detailed_rows(html.render(few)) == detailed_rows(html.render(few, "full"))
    assert "compact output" not in html.render(few)


def test_the_output_magic_switches_what_cells_save(shell: InteractiveShell) -> None:
    attrs = openai_chat()
    body = ("import llmtrace_nb\n"
            f"for i in range(25):\n    with llmtrace_nb.span('openai.chat', kind='llm', "
            f"**{attrs!r}):\n        pass\n")
    _, out = run(shell, "%%trace compact\n" + body)
    view = next(b for b in out.bundles if MIME_TYPE in b)
    assert "gen_ai.input.messages" not in json.dumps(view[MIME_TYPE])
    assert len(detailed_rows(view["text/html"])) == html.COMPACT_DETAILS
    _, said = run(shell, "%llmtrace output full")
    assert "output full" in said.stdout
    _, out = run(shell, "%%trace full\n" + body)
    view = next(b for b in out.bundles if MIME_TYPE in b)
    assert "gen_ai.input.messages" in json.dumps(view[MIME_TYPE])
    assert len(detailed_rows(view["text/html"])) == 25
    assert "output full" in run(shell, "%llmtrace output")[1].stdout
    import llmtrace_nb
    assert len(detailed_rows(llmtrace_nb.view().html())) == 25
    run(shell, "%llmtrace output compact")
    assert len(detailed_rows(llmtrace_nb.view().html())) == html.COMPACT_DETAILS
    with pytest.raises(Exception, match="invalid choice"):
        shell.run_line_magic("llmtrace", "output tiny")


def saved_bytes(nb: nbformat.NotebookNode, cell: int) -> int:
    """Bytes a cell's outputs take in the .ipynb (as nbformat writes them)."""
    return len(json.dumps(nb.cells[cell].outputs, ensure_ascii=False).encode("utf-8"))


def test_a_100_call_cell_saves_under_1_5_kb_a_call(tmp_path: Path) -> None:
    """README's figure, on a notebook executed for real against the demo server."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (
        "%load_ext llmtrace_nb\nimport openai\nfrom llmtrace_nb import demo\n"
        "client = openai.OpenAI(base_url=demo.start().base_url, api_key='sk-demo')",
        "%%trace hundred\nfor i in range(100):\n"
        "    client.chat.completions.create(model='gpt-4o-mini', messages=[\n"
        "        {'role': 'user', 'content': f'question {i} about the capital of France'}])",
    )]
    path = tmp_path / "hundred.ipynb"
    nbformat.write(nb, path)
    done = execute(path)
    per_call = saved_bytes(done, 1) / 100
    assert per_call <= 1_500, f"{per_call:.0f} B per call"
    doc = next(o for o in done.cells[1].outputs if MIME_TYPE in o.get("data", {}))
    calls = [s for s in doc["data"][MIME_TYPE]["spans"] if s["kind"] == "llm"]
    assert len(calls) == 100 and all(s["input_messages"] and s["output_messages"]
                                     for s in calls)
    assert doc["data"][MIME_TYPE]["name"] == "hundred"
