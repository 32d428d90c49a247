"""Screenshots of the static HTML trace view, light and dark, with headless Chromium.

    python scripts/screenshot_html.py [OUT_DIR]      # default: docs/images

Renders the agent trace of ``tests/docs.py`` (its first LLM call and the failed call
expanded, as a user would have them), wraps it in a page that looks like a JupyterLab
output (the light page sets no ``--jp-*`` variables, as in VS Code or nbviewer; the dark
page sets JupyterLab's dark theme variables) and writes ``trace-view-light.png`` and
``trace-view-dark.png``; then the same view as GitHub shows it, every style stripped
(``tests/docs.py``'s ``stripped``), as ``trace-view-stripped.png``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
CHROMIUM = "/usr/bin/chromium"

#: JupyterLab's dark theme, the variables the view reads
DARK_VARS = """
  --jp-layout-color0: #111111; --jp-layout-color1: #212121; --jp-layout-color2: #424242;
  --jp-content-font-color1: rgba(255,255,255,1); --jp-content-font-color2: rgba(255,255,255,.7);
  --jp-ui-font-color0: rgba(255,255,255,1); --jp-border-color2: #424242;
  --jp-border-color3: #2f2f2f; --jp-error-color1: #f44336;
"""


def page(fragment: str, dark: bool) -> str:
    """A minimal page around the fragment; dark sets JupyterLab's dark variables."""
    body_style = (f"body {{{DARK_VARS} background: #111111; color: #fff; }}" if dark
                  else "body { background: #ffffff; color: #1f2328; }")
    theme = ' data-jp-theme-light="false"' if dark else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><style>"
            f"{body_style} body {{ margin: 0; padding: 20px 24px; }}</style></head>"
            f"<body{theme}>{fragment}"
            "</body></html>")


def expanded(fragment: str, rows: tuple[int, ...]) -> str:
    """Open the rows of these indexes, as a user clicking them would."""
    first, *cells = fragment.split("<td><details>")
    return first + "".join(("<td><details open>" if i in rows else "<td><details>") + cell
                           for i, cell in enumerate(cells))


def shoot(html_text: str, png: Path, *, height: int = 700) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "view.html"
        src.write_text(html_text, encoding="utf-8")
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", "--hide-scrollbars",
                        f"--user-data-dir={tmp}/profile", f"--window-size=1100,{height}",
                        f"--screenshot={png}", src.as_uri()],
                       check=True, capture_output=True, timeout=120)


def main(out_dir: str = "docs/images") -> None:
    from llmtrace_nb.views import html

    from docs import agent_doc, stripped

    out = ROOT / out_dir
    out.mkdir(parents=True, exist_ok=True)
    fragment = expanded(html.render(agent_doc()), rows=(3,))
    for dark in (False, True):
        png = out / f"trace-view-{'dark' if dark else 'light'}.png"
        shoot(page(fragment, dark), png)
        print(png)
    png = out / "trace-view-stripped.png"
    shoot(page(stripped(html.render(agent_doc())), dark=False), png, height=330)
    print(png)


if __name__ == "__main__":
    main(*sys.argv[1:2])
