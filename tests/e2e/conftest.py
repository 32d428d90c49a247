"""Fixtures of the browser tests: one Jupyter server and one headless Chromium per session.

The browser is the system's ``/usr/bin/chromium`` (Playwright's own download does not
work on the machines this runs on). Without it the tests skip with the reason — except
in CI (``CI`` set), where a missing browser must fail the run instead of hiding it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.lab import SCREENSHOTS, LabServer

CHROMIUM = os.environ.get("LLMTRACE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} not found: install it with `apt-get install -y chromium` "
                     "(or set LLMTRACE_CHROMIUM) to run the browser tests")
    return CHROMIUM


# Module scope too: the server and the kernels of its notebooks stop as soon as the
# browser tests are done, instead of idling through the rest of the session.
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> Iterator[LabServer]:
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _unavailable("jupyterlab is not installed: pip install -e '.[e2e]'")
    server = LabServer(tmp_path_factory.mktemp("lab"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Module scope, not session: while Playwright's sync API is open, asyncio sees its loop
# as running in this thread, and the async tests collected after tests/e2e would fail.
@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[e2e]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS,
                                    headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 1000},
                                  device_scale_factor=1)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    stacks: list[str] = []  # where each came from: which extension's bundle

    def on_error(error: Any) -> None:
        errors.append(str(error))
        stacks.append(str(error.stack))

    page.on("pageerror", on_error)
    page.errors = errors
    page.error_stacks = stacks
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            # the page may be gone; the failure itself matters more than its picture
            with contextlib.suppress(Exception):
                page.screenshot(path=str(SCREENSHOTS / f"FAILED-{name}.png"), full_page=True)
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so `page` can screenshot failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
