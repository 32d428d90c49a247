"""How soon the "LLM" side panel has a notebook's numbers after the notebook shows.

Not part of ``make bench`` (it needs JupyterLab, Chromium and an executed quickstart):
run ``make demo`` first (it writes build/quickstart.ipynb), then
``.venv/bin/python -m benchmarks.panel_open [RUNS]``. It opens the notebook in a real
JupyterLab with no kernel (session requests refused), as a reader of a saved notebook
would, and times from the notebook's DOM to the status item's ``LLM $…`` text, which
the panel is drawn from at the same moment.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from e2e.conftest import CHROMIUM_ARGS  # noqa: E402
from e2e.lab import LabServer  # noqa: E402

NOTEBOOK = ROOT / "build" / "quickstart.ipynb"
READY = """() => { const s = document.querySelector('.jp-LLMTraceStatus');
                   return s && s.textContent.startsWith('LLM'); }"""


def main(runs: int = 5) -> list[float]:
    from playwright.sync_api import sync_playwright

    if not NOTEBOOK.exists():
        raise SystemExit(f"{NOTEBOOK} is missing: run `make demo` first")
    lab = LabServer(Path(tempfile.mkdtemp(prefix="llmtrace-panel-")))
    lab.start()
    took: list[float] = []
    try:
        shutil.copy(NOTEBOOK, lab.root / NOTEBOOK.name)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=CHROMIUM_ARGS, headless=True)
            for run in range(runs):
                context = browser.new_context(viewport={"width": 1360, "height": 1000})
                page = context.new_page()
                page.route("**/api/sessions**", lambda r: r.abort()
                           if r.request.method == "POST" else r.continue_())
                page.goto(lab.lab_url(NOTEBOOK.name, f"panel-{run}"))
                page.wait_for_selector(".jp-Notebook", timeout=60_000)
                start = page.evaluate("() => performance.now()")
                page.wait_for_function(READY, timeout=60_000)
                took.append(page.evaluate("() => performance.now()") - start)
                context.close()
            browser.close()
    finally:
        lab.stop()
    print(f"notebook shown -> panel numbers: median {statistics.median(took):.0f} ms "
          f"(runs {', '.join(f'{t:.0f}' for t in took)})")
    return took


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
