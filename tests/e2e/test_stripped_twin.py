"""The saved trace where every style is stripped, as GitHub shows a notebook.

GitHub's notebook view removes ``<style>`` and ``<script>`` elements and ``style``, ``class``
and ``id`` attributes from HTML outputs. The static twin must still read as a waterfall
there: a table whose every LLM row has its model, tokens, cost, duration and a text bar
as long as its duration. The notebooks of ``notebooks/`` are executed for real (demo
server), their twins stripped and rendered in Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from e2e.lab import SCREENSHOTS
from llmtrace_nb._shape.document import MIME_TYPE
from llmtrace_nb.views import html

from conftest import ROOT
from docs import stripped, xss_doc
from run_notebook import execute

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
EIGHTHS = " ▏▎▍▌▋▊▉"


def twins(nb: nbformat.NotebookNode) -> list[str]:
    """The trace views' HTML twins, in the notebook's order."""
    return [out["data"]["text/html"] for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if MIME_TYPE in out.get("data", {})]


@pytest.fixture(scope="module")
def executed() -> dict[str, nbformat.NotebookNode]:
    return {name: execute(ROOT / "notebooks" / name) for name in NOTEBOOKS}


def page_of(fragments: list[str]) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'></head><body>"
            + "<hr>".join(fragments) + "</body></html>")


#: each row of each table, as the reader sees it: the cells' text
READ_ROWS = """() => [...document.querySelectorAll('table')].filter(
    t => t.tHead && t.tHead.innerText.includes('timeline')).map(t => ({
        head: [...t.tHead.rows[0].cells].map(c => c.innerText),
        rows: [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.innerText)),
        shown: t.getBoundingClientRect().height > 0}))"""


def scale_ms(head: str) -> float:
    """Milliseconds per character of the text bar, from the timeline's column head."""
    found = re.search(r"one █ = ([\d,.]+) (ms|s)", head)
    assert found, head
    value = float(found.group(1).replace(",", ""))
    return value * 1000 if found.group(2) == "s" else value


def duration_ms(text: str) -> float:
    return shown_ms(text)[0]


def shown_ms(text: str) -> tuple[float, float]:
    """A shown duration in ms, and how far the rounding may have moved it."""
    found = re.fullmatch(r"([\d,]+)(?:\.(\d+))? (ms|s)", text)
    assert found, text
    unit = 1000.0 if found.group(3) == "s" else 1.0
    decimals = len(found.group(2) or "")
    value = float(found.group(1).replace(",", "") + "." + (found.group(2) or "0"))
    return value * unit, 0.5 * 10 ** -decimals * unit


def bar_eighths(text: str) -> int:
    """The bar's length in eighths of a character (its padding does not count)."""
    bar = text.replace("\u00a0", "")
    full = bar.count("█") + bar.count("░")
    partial = [c for c in bar if c in EIGHTHS[1:]]
    assert len(partial) <= 1 and bar, repr(text)
    return 8 * full + (EIGHTHS.index(partial[0]) if partial else 0)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_llm_row_reads_without_styles(executed: dict[str, nbformat.NotebookNode],
                                            page: Any, name: str) -> None:
    views = twins(executed[name])
    assert views, f"{name} has no trace view"
    page.set_content(page_of([stripped(v) for v in views]))
    tables = page.evaluate(READ_ROWS)
    assert len(tables) == len(views)
    calls = 0
    for table in tables:
        assert table["shown"]
        head = table["head"]
        assert head[:7] == ["span", "kind", "model / tool", "tokens", "cost", "duration",
                            "start"], head
        per_char = scale_ms(head[7])
        for cells in table["rows"]:
            # (durations keep their unit on their line with a no-break space)
            *texts, bar = cells
            span, kind, model, tokens, cost, duration, start = (
                t.replace("\u00a0", " ") for t in texts)
            assert span.strip(), cells
            assert duration_ms(start) >= 0 and bar.strip(), cells
            if kind != "llm":
                continue
            calls += 1
            assert model and re.fullmatch(r"[\d,]+", tokens), cells
            assert cost.startswith("$") or cost == "no price", cells
            # the bar: as long as the duration, in eighths of a character (at least one;
            # the shown duration is rounded, as is the scale in the head)
            shown, rounding = shown_ms(duration)
            expected = max(1.0, shown / per_char * 8)
            slack = 1.0 + 0.02 * expected + rounding / per_char * 8
            assert abs(bar_eighths(bar) - expected) <= slack, (cells, per_char)
    assert calls > 0
    # a call's row still opens to its messages
    call = page.locator("tbody > tr").filter(
        has=page.locator("td:nth-child(2)", has_text=re.compile("^llm$"))).first
    before = call.bounding_box()["height"]
    call.locator("summary").first.click()
    assert call.locator("details").first.evaluate("d => d.open")
    assert call.bounding_box()["height"] > before + 20
    assert call.get_by_text("assistant", exact=True).first.is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"stripped-{Path(name).stem}.png"), full_page=True)


def test_a_styled_twin_draws_its_bars_and_hides_the_text_ones(
        executed: dict[str, nbformat.NotebookNode], page: Any) -> None:
    """With its style sheet (VS Code, nbviewer, nbconvert) the twin looks as before: the
    drawn bars and the axis, the text bars and the model / start cells out of sight."""
    view = twins(executed["quickstart.ipynb"])[0]
    page.set_content(page_of([view]))
    seen = page.evaluate("""() => {
        const rows = [...document.querySelectorAll('.wf > tbody > tr')];
        const visible = el => el.getClientRects().length > 0;
        return {
            rows: rows.length,
            drawn: rows.filter(r => r.cells[7].querySelector('i').offsetWidth >= 2).length,
            text: rows.filter(r => visible(r.cells[7].querySelector('code'))).length,
            model: rows.filter(r => visible(r.cells[2])).length,
            ticks: [...document.querySelectorAll('thead i')].map(
                i => getComputedStyle(i, '::before').content),
            heights: rows.map(r => r.getBoundingClientRect().height),
        }; }""")
    assert seen["rows"] > 0 and seen["drawn"] == seen["rows"]
    assert seen["text"] == 0 and seen["model"] == 0
    assert seen["ticks"][0] == '"0 ms"', seen["ticks"]
    assert max(seen["heights"]) < 30, seen["heights"]  # one line a row, closed
    page.click(".wf > tbody > tr:nth-child(2) summary")  # opens below the row, full width
    width = page.evaluate("""() => {
        const row = document.querySelectorAll('.wf > tbody > tr')[1];
        const body = row.querySelector('details > div');
        return [body.getBoundingClientRect().width, row.getBoundingClientRect().width]; }""")
    assert width[0] > 0.8 * width[1], width
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "styled-quickstart.png"), full_page=True)


def test_hostile_strings_stay_inert_after_stripping(page: Any) -> None:
    page.set_content(page_of([stripped(html.render(xss_doc()))])
                     + "<script>window.__loaded = true</script>")
    assert page.evaluate("() => window.__loaded === true && window.__xss === undefined")
    assert page.evaluate("() => document.querySelectorAll('img, iframe, a, svg').length") == 0
