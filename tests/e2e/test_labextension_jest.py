"""The extension's TypeScript unit tests (jest, in jsdom), run from pytest.

They live with the extension (labextension/test/); running them here means `make test`
(and its exit code, which is pytest's) covers them too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from e2e.lab import ROOT


def test_jest_unit_tests_pass() -> None:
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("npm not found (CI is set, so the extension's tests must run)")
        pytest.skip("npm not found: install Node.js 20+ to run the extension's unit tests")
    if not (ROOT / "node_modules" / ".bin" / "jest").exists():
        subprocess.run([npm, "ci"], cwd=ROOT, check=True, capture_output=True)
    # the test documents are built by this interpreter's llmtrace_nb (tests/docs.py)
    env = dict(os.environ, LLMTRACE_PYTHON=sys.executable)
    proc = subprocess.run([npm, "test", "--", "--ci"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, f"jest failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-10000:]}"


def test_palette_matches_the_static_view() -> None:
    """One kind, one color: the renderer's CSS uses views/html.py's KIND_COLORS."""
    import re

    from llmtrace_nb.views.html import ERROR_COLOR, KIND_COLORS

    css = (ROOT / "labextension" / "style" / "base.css").read_text()
    found = dict(re.findall(r"--lt-c-([a-z]+):\s*(#[0-9a-fA-F]{6});", css))
    expected = {kind: color.lower() for kind, color in KIND_COLORS.items()}
    expected["error"] = ERROR_COLOR.lower()
    assert {k: v.lower() for k, v in found.items()} == expected
