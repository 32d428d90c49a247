"""The JupyterLab extension in a real JupyterLab (and Notebook 7) in headless Chromium.

What a user does: run a ``%%trace`` cell against the demo server and read the waterfall;
save, close, reopen without a kernel and still see it; open a notebook someone else
made (untrusted, full of markup) safely; switch to the dark theme; open it in Notebook 7.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import time
from typing import Any

import pytest

from e2e.lab import (
    MIME_TYPE,
    ROOT,
    LabServer,
    command,
    dismiss_kernel_dialogs,
    kernel_value,
    open_in_lab,
    save_shot,
    trace_output,
    wait_for_kernel,
)
from llmtrace_nb._keep.store import Store

from docs import XSS_PAYLOADS, agent_doc, xss_doc

#: our renderer's root; the static HTML twin does not carry this attribute
VIEW = '[data-llmtrace-view="jupyterlab"]'
DOCS_IMAGE = ROOT / "docs" / "images" / "jupyterlab-waterfall.png"

SETUP = """\
from llmtrace_nb import demo
srv = demo.start()
import openai
client = openai.OpenAI(base_url=srv.base_url, api_key='x')"""

TRACED = """\
%%trace e2e-agent
import llmtrace_nb
with llmtrace_nb.span("plan", kind="agent"):
    client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"}])
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Tell me a short story"}],
        stream=True, stream_options={"include_usage": True})
    for _ in stream:
        pass
    client.chat.completions.create(model="gpt-4o", messages=[
        {"role": "user", "content": "Weather in Paris?"}], tools=[{"type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}}}}])"""

AGENT_SOURCE = '%%trace rag-eval\nanswer = agent.run("What is the capital of France?")'


def row(view: Any, name: str) -> Any:
    exact = re.compile(f"^{re.escape(name)}$")
    return view.locator(".lt-row", has=view.page.locator(".lt-name-text", has_text=exact)).first


def luminance(css_color: str) -> float:
    """Relative luminance (0 black … 1 white) of an ``rgb(a)(…)`` computed color."""
    parts = css_color[css_color.index("(") + 1:css_color.index(")")].replace("/", " ")
    r, g, b = (float(v) for v in parts.replace(",", " ").split()[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.fixture(scope="module")
def agent_notebook(lab: LabServer) -> str:
    """A notebook as a %%trace cell saved it: the agent trace of tests/docs.py."""
    lab.write_notebook("agent.ipynb", [AGENT_SOURCE], {0: [trace_output(agent_doc())]})
    return "agent.ipynb"


def test_live_trace_renders_saves_and_reopens_without_kernel(
        lab: LabServer, page: Any, browser: Any) -> None:
    lab.write_notebook("live.ipynb", ["%load_ext llmtrace_nb", SETUP, TRACED])
    open_in_lab(page, lab, "live.ipynb", "live")
    wait_for_kernel(page)
    command(page, "notebook:run-all-cells", wait=False)
    view = page.locator(".jp-Cell").nth(2).locator(VIEW)
    view.wait_for(timeout=120_000)
    # our renderer, chosen over the text/html twin in the same bundle
    output = page.locator(".jp-OutputArea-output", has=page.locator(VIEW)).first
    assert "jp-LLMTraceRenderer" in (output.get_attribute("class") or "")
    assert "e2e-agent" in view.locator(".lt-header").inner_text()
    assert "3 LLM calls" in view.locator(".lt-header").inner_text()
    assert view.locator(".lt-row").count() >= 5  # the cell, the agent span, 3 calls
    assert view.locator(".lt-row.lt-kind-agent").count() == 1

    # click the first call: its messages, as chat turns
    view.locator(".lt-row.lt-kind-llm").first.click()
    detail = view.locator(".lt-detail")
    detail.wait_for()
    assert "What is the capital of France?" in detail.inner_text()
    assert "Demo reply to: What is the capital of France?" in detail.inner_text()
    assert detail.locator(".lt-role").first.inner_text().lower() == "system"

    # the keyboard moves the selection and the open detail follows; the notebook's own
    # shortcuts stay out of the way (ArrowDown would select the next cell, "a" would
    # insert one)
    cells = page.locator(".jp-Cell").count()
    active = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("a")
    assert "Tell me a short story" in detail.inner_text()
    assert page.locator(".jp-Cell").count() == cells
    assert page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex") == active
    view.locator(".lt-row.lt-kind-llm").nth(2).click()
    assert "get_weather" in detail.locator(".lt-toolcall").inner_text()
    save_shot(page.locator(".jp-Cell").nth(2), "lab-live-run.png")
    assert page.errors == []

    # save, then shut the kernel down
    command(page, "docmanager:save")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        outputs = lab.read_notebook("live.ipynb").cells[2].outputs
        if any(MIME_TYPE in o.get("data", {}) for o in outputs):
            break
        time.sleep(0.3)
    else:
        pytest.fail("the saved notebook has no trace output")
    for session in lab.api("GET", "/api/sessions"):
        lab.api("DELETE", f"/api/sessions/{session['id']}")
    page.context.close()

    # the kernel wrote its spans to the local store on its way out, under the notebook
    # Jupyter Server told it it runs (JPY_SESSION_NAME)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stored = [s for s in Store(lab.store_path).sessions()
                  if s.notebook and s.notebook.endswith("live.ipynb") and s.spans >= 5]
        if stored:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no stored session of live.ipynb: {Store(lab.store_path).sessions()}")

    # reopen with no kernel at all: the view comes from the saved notebook alone
    context = browser.new_context(viewport={"width": 1360, "height": 1000})
    try:
        reopened = context.new_page()
        reopened.route("**/api/sessions**", lambda route: route.abort()
                       if route.request.method == "POST" else route.continue_())
        open_in_lab(reopened, lab, "live.ipynb", "reopen")
        view = reopened.locator(".jp-Cell").nth(2).locator(VIEW)
        view.wait_for()
        dismiss_kernel_dialogs(reopened)
        assert view.locator(".lt-row").count() >= 5
        view.locator(".lt-row.lt-kind-llm").first.click()
        assert "What is the capital of France?" in view.locator(".lt-detail").inner_text()
        # no kernel to record a judgement in: the thumbs say so instead of failing
        thumb = view.locator(".lt-detail .lt-thumb-down")
        assert thumb.is_disabled()
        assert "kernel" in (thumb.get_attribute("title") or "")
        assert lab.api("GET", "/api/kernels") == []
        save_shot(reopened.locator(".jp-Cell").nth(2), "lab-reopened-no-kernel.png")
    finally:
        context.close()


def test_untrusted_markup_stays_text(lab: LabServer, page: Any) -> None:
    lab.write_notebook("xss.ipynb", ["%%trace"], {0: [trace_output(xss_doc())]})
    open_in_lab(page, lab, "xss.ipynb", "xss")
    view = page.locator(VIEW).first
    view.wait_for()
    shown = view.inner_text()
    rows = view.locator(".lt-row")
    for i in range(rows.count()):
        rows.nth(i).click()
        view.locator(".lt-attrs summary").click()
        shown += view.locator(".lt-detail").inner_text()
    output = page.locator(".jp-OutputArea-output", has=page.locator(VIEW)).first
    assert output.locator("script, img, iframe, svg, object, embed, a, style").count() == 0
    assert page.evaluate("() => window.__xss") is None
    for payload in XSS_PAYLOADS:
        assert payload in shown, payload
    assert page.errors == []


def test_waterfall_light_and_dark(lab: LabServer, page: Any, agent_notebook: str) -> None:
    open_in_lab(page, lab, agent_notebook, "themes")
    view = page.locator(VIEW).first
    view.wait_for()
    cell = page.locator(".jp-Cell", has=view).first
    row(view, "chat gpt-4o-mini").click()
    view.locator(".lt-detail").wait_for()
    assert "Capital of France?" in view.locator(".lt-detail").inner_text()
    # the labeled axis and the bars share one time scale: same left edge and width
    axis = view.locator(".lt-axis").bounding_box()
    track = row(view, "retrieve").locator(".lt-track").bounding_box()
    assert abs(axis["x"] - track["x"]) < 1 and abs(axis["width"] - track["width"]) < 1
    page.mouse.move(0, 0)  # no hover highlight in the pictures
    light = save_shot(cell, "lab-light-waterfall.png")
    DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(light, DOCS_IMAGE)
    light_bg = view.evaluate("e => getComputedStyle(e).backgroundColor")
    assert luminance(light_bg) > 0.8

    try:
        command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
        page.wait_for_selector('body[data-jp-theme-light="false"]', state="attached",
                               timeout=30_000)
        page.wait_for_timeout(500)  # the theme's stylesheet applies after the attribute
        dark_bg = view.evaluate("e => getComputedStyle(e).backgroundColor")
        dark_fg = view.evaluate("e => getComputedStyle(e).color")
        assert luminance(dark_bg) < 0.2, dark_bg
        assert luminance(dark_fg) > 0.6, dark_fg
        bar = row(view, "chat gpt-4o-mini").locator(".lt-bar")
        llm_color = "rgb(78, 121, 167)"  # KIND_COLORS["llm"] of views/html.py
        assert bar.evaluate("e => getComputedStyle(e).backgroundColor") == llm_color
        page.mouse.move(0, 0)
        save_shot(cell, "lab-dark-waterfall.png")
    finally:
        command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
        page.wait_for_selector('body[data-jp-theme-light="true"]', state="attached",
                               timeout=30_000)


def test_notebook7_shows_the_waterfall(lab: LabServer, page: Any, agent_notebook: str) -> None:
    page.goto(f"{lab.url}/tree?token={lab.token}")
    page.get_by_text(agent_notebook).first.wait_for(timeout=60_000)  # the file browser
    page.goto(lab.notebook7_url(agent_notebook))
    view = page.locator(VIEW).first
    view.wait_for(timeout=60_000)
    assert view.locator(".lt-row").count() == 7
    row(view, "execute_tool search").click()
    assert "search" in view.locator(".lt-toolcall").inner_text()
    save_shot(page.locator(".jp-Cell", has=view).first, "notebook7-waterfall.png")


def test_big_trace_stays_responsive(lab: LabServer, page: Any) -> None:
    from docs import big_doc

    lab.write_notebook("big.ipynb", ["%%trace big"], {0: [trace_output(big_doc())]})
    open_in_lab(page, lab, "big.ipynb", "big")
    view = page.locator(VIEW).first
    view.wait_for(timeout=60_000)
    assert "10,000 spans" in view.locator(".lt-count").inner_text()
    assert view.locator(".lt-row").count() < 200  # only the rows in view exist
    view.locator(".lt-row").first.click()
    # End jumps 10k rows; the last row is drawn and selected within a frame or two
    took = page.evaluate("""async () => {
        const list = document.querySelector('.lt-scroller');
        const start = performance.now();
        list.dispatchEvent(new KeyboardEvent('keydown', {key: 'End', bubbles: true}));
        await new Promise(requestAnimationFrame);
        return performance.now() - start;
    }""")
    assert took < 500, took
    assert view.locator(".lt-row.lt-selected").get_attribute("data-index") == "9999"
    assert view.locator(".lt-row").count() < 200
    # typing in the filter filters; it does not reach the notebook ("a" inserts a cell)
    view.locator(".lt-filter").press_sequentially("agent")
    assert "of 10,000 spans" in view.locator(".lt-count").inner_text()
    assert page.locator(".jp-Cell").count() == 1


COMPARED = [
    "%load_ext llmtrace_nb", SETUP,
    "%%trace prompt v1\nfor q in ['Capital of France?', 'Capital of Spain?']:\n"
    "    client.chat.completions.create(model='gpt-4o-mini', "
    "messages=[{'role': 'user', 'content': q}])",
    "%%trace prompt v2\nfor q in ['The capital of France, in a word?', 'Capital of Spain?']:\n"
    "    client.chat.completions.create(model='gpt-4o', "
    "messages=[{'role': 'user', 'content': q}])",
    "import llmtrace_nb\nllmtrace_nb.evaluate(None, 'exact', label='fail')\n"
    "llmtrace_nb.compare('prompt v1', 'prompt v2')",
]


def test_compare_renders_its_tables_and_diffs(lab: LabServer, page: Any) -> None:
    lab.write_notebook("compare.ipynb", COMPARED)
    open_in_lab(page, lab, "compare.ipynb", "compare")
    wait_for_kernel(page)
    command(page, "notebook:run-all-cells", wait=False)
    view = page.locator(".jp-Cell").nth(4).locator(".lc-root")
    view.wait_for(timeout=120_000)
    output = page.locator(".jp-OutputArea-output", has=page.locator(".lc-root")).first
    assert "jp-LLMTraceCompareRenderer" in (output.get_attribute("class") or "")
    text = view.inner_text()
    assert "compare: prompt v1 vs prompt v2" in text
    assert "LLM calls" in text and "cost" in text and "(1.00×)" in text
    assert "exact" in text  # the judgement, on the second side
    view.locator("details.lc-pair summary").first.click()
    assert view.locator("details.lc-pair").first.locator("del, ins").count() >= 1
    save_shot(page.locator(".jp-Cell").nth(4), "lab-compare.png")

    # a thumb down on the second call of "prompt v1": recorded in the kernel, as a
    # judgement of that call
    trace = page.locator(".jp-Cell").nth(2).locator(VIEW)
    call = trace.locator(".lt-row.lt-kind-llm").nth(1)
    call.hover()
    call.locator(".lt-thumb-down").click()
    trace.locator(".lt-feedback-status", has_text="Recorded thumbs down").wait_for()
    assert call.locator(".lt-eval-negative").inner_text() == "✗ feedback"
    judged = kernel_value(page, "llmtrace_nb.evaluations_df()"
                          "[['evaluation', 'label', 'score', 'cell_name']]"
                          ".to_json(orient='records')")
    assert {"evaluation": "feedback", "label": "thumbs_down", "score": 0.0,
            "cell_name": "prompt v1"} in json.loads(ast.literal_eval(judged))
    assert page.errors == []
