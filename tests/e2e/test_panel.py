"""The "LLM traces" side panel and status item, in a real JupyterLab and Notebook 7.

What a user does: open an executed notebook — no kernel needed — and see its LLM spend
per cell and per model; sort by cost and jump to the costliest cell; copy the table;
watch it follow cells as they run; read it in the dark theme; by keyboard, and with axe
finding no serious accessibility violation.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest

from e2e.lab import (
    MIME_TYPE,
    ROOT,
    LabServer,
    command,
    dismiss_kernel_dialogs,
    open_in_lab,
    save_shot,
    wait_for_kernel,
)
from llmtrace_nb.views.text import format_cost

from run_notebook import execute

PANEL = "#llmtrace-nb-traces"
STATUS = ".jp-LLMTraceStatus"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
DOCS_IMAGES = ROOT / "docs" / "images"


@pytest.fixture(scope="module")
def quickstart(lab: LabServer) -> dict[str, Any]:
    """The quickstart, executed against the demo server, in the server's root; and what
    its saved traces add up to, read here independently of the panel."""
    nb = execute(ROOT / "notebooks" / "quickstart.ipynb")
    nbformat.write(nb, lab.root / "quickstart.ipynb")
    docs = [(i, o["data"][MIME_TYPE]) for i, c in enumerate(nb.cells)
            for o in c.get("outputs", []) if MIME_TYPE in o.get("data", {})]
    assert len(docs) >= 2, "the quickstart should trace several cells"
    cost = sum(d["totals"]["cost_usd"] or 0 for _, d in docs)
    return {"docs": docs, "calls": sum(d["totals"]["llm_calls"] for _, d in docs),
            "cost": cost,
            "costliest": max(docs, key=lambda d: d[1]["totals"]["cost_usd"] or 0)[0]}


def open_without_kernel(page: Any, lab: LabServer, notebook: str, workspace: str) -> None:
    page.route("**/api/sessions**", lambda route: route.abort()
               if route.request.method == "POST" else route.continue_())
    open_in_lab(page, lab, notebook, workspace)
    dismiss_kernel_dialogs(page)


def axe_violations(page: Any, selector: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations inside ``selector``."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async (selector) => {
        const result = await axe.run(document.querySelector(selector),
                                     {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.map(n => n.html).slice(0, 3)}));
    }""", selector)
    return [v for v in found if v["impact"] in ("serious", "critical")]


def test_the_panel_shows_a_saved_notebooks_spend_without_a_kernel(
        lab: LabServer, page: Any, quickstart: dict[str, Any]) -> None:
    open_without_kernel(page, lab, "quickstart.ipynb", "panel")
    status = page.locator(STATUS)
    status.wait_for(timeout=30_000)
    calls = quickstart["calls"]
    assert status.inner_text() == (f"LLM {format_cost(quickstart['cost'])} · {calls} "
                                   f"call{'s' if calls != 1 else ''}")
    status.click()  # the status item opens the panel
    panel = page.locator(PANEL)
    panel.wait_for()
    totals = panel.locator(".lt-panel-totals").inner_text()
    assert format_cost(quickstart["cost"]) in totals
    assert f"{calls} LLM call" in totals
    assert f"{len(quickstart['docs'])} traced cells" in totals
    cells = panel.locator(".lt-panel-section").first.locator("tbody")  # one per cell
    assert cells.count() == len(quickstart["docs"])
    assert panel.locator(".lt-panel-model").count() >= 1  # per model
    save_shot(page.locator(PANEL), "lab-traces-panel.png")

    # sort by cost, largest first, and go to the costliest cell with one click
    panel.locator(".lt-sort", has_text="cost").click()
    assert panel.locator("th[aria-sort='descending']").inner_text().startswith("cost")
    cells.first.locator(".lt-panel-cell").click()
    page.wait_for_function(
        "(i) => window.jupyterapp.shell.currentWidget.content.activeCellIndex === i",
        arg=quickstart["costliest"], timeout=10_000)
    target = page.locator(".jp-Notebook .jp-Cell").nth(quickstart["costliest"])
    view = target.locator('[data-llmtrace-view="jupyterlab"]')
    view.wait_for()
    box = view.bounding_box()
    window = page.locator(".jp-Notebook").bounding_box()
    assert box is not None and window is not None
    assert box["y"] < window["y"] + window["height"] and box["y"] + box["height"] > window["y"]

    # the keyboard reaches every part: Tab into the sort buttons and cell links
    panel.locator(".lt-panel-cell").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.content"
                           ".activeCellIndex >= 0")

    # copy as Markdown: what lands on the clipboard is the table
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    panel.locator("button[aria-label='copy the cells table as Markdown']").click()
    panel.locator(".lt-panel-status", has_text="Copied").wait_for()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith("| cell | calls | input_tokens |")
    assert len(copied.strip().splitlines()) == 2 + len(quickstart["docs"])

    assert axe_violations(page, PANEL) == []
    assert axe_violations(page, '[data-llmtrace-view="jupyterlab"]') == []

    try:
        command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
        page.wait_for_selector('body[data-jp-theme-light="false"]', state="attached",
                               timeout=30_000)
        page.wait_for_timeout(500)
        dark = save_shot(page.locator(PANEL), "lab-traces-panel-dark.png")
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dark, DOCS_IMAGES / "jupyterlab-traces-panel-dark.png")
        assert axe_violations(page, PANEL) == []
    finally:
        command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
        page.wait_for_selector('body[data-jp-theme-light="true"]', state="attached",
                               timeout=30_000)
    light = Path(save_shot(page.locator(PANEL), "lab-traces-panel.png"))
    shutil.copyfile(light, DOCS_IMAGES / "jupyterlab-traces-panel.png")
    # ipywidgets' manager throws on the quickstart's widget outputs with no kernel; none
    # of ours may
    assert [s for s in page.error_stacks if "llmtrace_nb" in s] == []


def test_the_panel_follows_cells_as_they_run(lab: LabServer, page: Any) -> None:
    setup = ("from llmtrace_nb import demo\nsrv = demo.start()\nimport openai\n"
             "client = openai.OpenAI(base_url=srv.base_url, api_key='x')")
    call = ("%%trace {name}\nclient.chat.completions.create(model='{model}', "
            "messages=[{{'role': 'user', 'content': 'hi'}}])")
    lab.write_notebook("growing.ipynb", [
        "%load_ext llmtrace_nb", setup, call.format(name="first", model="gpt-4o-mini"),
        call.format(name="second", model="gpt-4o")])
    open_in_lab(page, lab, "growing.ipynb", "growing")
    command(page, "llmtrace_nb:open-traces")
    panel = page.locator(PANEL)
    panel.locator(".lt-panel-empty", has_text="No traced cells").wait_for()
    wait_for_kernel(page)
    command(page, "notebook:run-all-cells", wait=False)
    rows = panel.locator(".lt-panel-section").first.locator("tbody")
    page.wait_for_function("""() => document.querySelectorAll(
        '#llmtrace-nb-traces .lt-panel-section:first-of-type tbody').length === 2""",
                           timeout=120_000)
    assert [r.strip() for r in rows.locator(".lt-panel-cell").all_inner_texts()] == [
        "cell [3] first", "cell [4] second"]
    models = panel.locator(".lt-panel-model").all_inner_texts()
    assert len(models) == 2 and all("gpt-4o" in m for m in models)
    assert "2 calls" in page.locator(STATUS).inner_text()
    assert page.errors == []


def test_notebook7_has_the_cost_item_and_the_panel(
        lab: LabServer, page: Any, quickstart: dict[str, Any]) -> None:
    """Notebook 7 has no status bar: the item is in the notebook's toolbar, and opens
    the panel in the right side area."""
    page.goto(f"{lab.url}/tree?token={lab.token}")
    page.get_by_text("quickstart.ipynb").first.wait_for(timeout=60_000)
    page.goto(lab.notebook7_url("quickstart.ipynb"))
    page.locator('[data-llmtrace-view="jupyterlab"]').first.wait_for(timeout=60_000)
    item = page.locator(STATUS)
    item.wait_for(timeout=30_000)
    assert item.inner_text().startswith(f"LLM {format_cost(quickstart['cost'])}")
    item.click()
    panel = page.locator(PANEL)
    panel.wait_for(timeout=30_000)
    assert f"{quickstart['calls']} LLM call" in panel.locator(".lt-panel-totals").inner_text()
    save_shot(panel, "notebook7-traces-panel.png")
