"""Shared fixtures: one IPython shell with the extension loaded, one demo server."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

# The local store is on by default: every kernel the tests start, and this process, keep
# their spans in a throwaway store, never in the home directory.
STORE = Path(tempfile.mkdtemp(prefix="llmtrace-store-")) / "spans.sqlite"
os.environ["LLMTRACE_NB_STORE"] = str(STORE)


@pytest.fixture(scope="session")
def demo_server() -> Iterator[object]:
    from llmtrace_nb.demo import DemoServer

    with DemoServer() as server:
        yield server


@pytest.fixture(scope="session")
def ip() -> InteractiveShell:
    shell = InteractiveShell.instance()
    with capture_output():
        shell.run_line_magic("load_ext", "llmtrace_nb")
    return shell


@pytest.fixture
def shell(ip: InteractiveShell) -> Iterator[InteractiveShell]:
    """The shell with the extension loaded, an empty collector and default options."""
    from llmtrace_nb._notebook import session

    with capture_output():
        if "llmtrace_nb" not in ip.extension_manager.loaded:
            ip.run_line_magic("load_ext", "llmtrace_nb")
        ip.run_line_magic("llmtrace", "clear")
    sess = session.require()
    sess.auto = False
    sess.output = "compact"
    sess.set_capture_content(True)
    sess.set_traceparent(False)
    sess.prices.clear_overrides()
    yield ip
    sess.auto = False
    sess.output = "compact"
    sess.set_capture_content(True)
    sess.set_traceparent(False)


class Output:
    """What a cell printed and displayed."""

    def __init__(self, captured: CapturedIO) -> None:
        self.stdout = captured.stdout
        self.stderr = captured.stderr
        #: the data dicts of everything displayed, in order
        self.bundles = [o.data for o in captured.outputs]
        #: stdout, then the text/plain of every displayed bundle
        self.text = self.stdout + "".join(
            b.get("text/plain", "") + "\n" for b in self.bundles)


def run(shell: InteractiveShell, source: str) -> tuple[ExecutionResult, Output]:
    """Run a cell as a notebook would (history on, so execution counts advance)."""
    with capture_output() as captured:
        result = shell.run_cell(source, store_history=True)
    return result, Output(captured)


# -- markers: what `make test-fast` leaves out -------------------------------------------
#
# Set here, from what a test uses and where it lives, so no test file has to say it
# (pyproject.toml registers the three markers and passes --strict-markers). `make test`
# runs everything; `make test-fast` runs -m "not slow and not browser and not phoenix".

#: fixtures whose use marks a test: each starts something heavy
MARKING_FIXTURES = {
    "kernel": "slow",  # a fresh ipykernel (frameworks/kernel.py; test_readme's)
    "lab": "browser",  # a JupyterLab server, and headless Chromium (tests/e2e)
    "page": "browser",
    "browser": "browser",
    "phoenix": "phoenix",  # Arize Phoenix in its own venv (test_phoenix)
}

#: node id prefixes marked slow: the tests start kernels, fresh interpreters or tools,
#: wait for real peers, or run at volume; seconds each. A new test that takes seconds
#: and uses none of the fixtures above belongs here (see CONTRIBUTING.md).
SLOW = (
    # real kernels (nbclient, jupyter_client), fresh interpreters, npm
    "tests/frameworks/",
    "tests/test_notebooks.py",
    "tests/test_saved_output.py::test_a_100_call_cell_saves_under_1_5_kb_a_call",
    "tests/test_content_off.py",
    "tests/test_provider.py",
    "tests/test_instrumentations.py",
    "tests/test_benchmarks.py",
    "tests/test_openai_streams.py",  # its module fixtures run the clients in subprocesses
    "tests/e2e/test_labextension_jest.py",
    "tests/test_readme.py::test_thirty_second_example_with_the_comments_demo_server",
    "tests/test_readme.py::test_nothing_leaves_the_machine_unless_forwarded",
    "tests/test_readme.py::test_a_forked_child_collects_into_its_own_copy",
    "tests/test_readme.py::test_exit_waits_at_most_3_s_for_the_last_spans",
    "tests/test_readme.py::test_demo_cli_is_as_readme_writes_it",
    "tests/test_readme.py::test_forward_cli_options_are_in_readme",
    "tests/test_readme.py::test_benchmarks_help_agrees_with_readme",
    "tests/test_readme.py::test_the_demo_printout_reads_as_readme_shows",
    "tests/test_files.py::test_load_in_a_fresh_process_feeds_frames_and_views",
    "tests/test_store.py",
    "tests/test_keep.py::test_kill_9_",
    "tests/test_keep.py::test_two_kernels_write_at_once",
    "tests/test_keep.py::test_a_forked_child_never_writes_through_the_parents_store",
    "tests/test_notebook_source.py::test_summary_from_a_shell",
    "tests/test_demo.py::test_module_cli_prints_base_url_and_serves",
    "tests/test_spec_fixes.py::test_demo_is_reachable_after_import_llmtrace_nb",
    "tests/test_html_view.py::test_nothing_runs_in_a_browser",
    # real OTLP peers on loopback: flushes, retries and deadlines waited out
    "tests/test_forward.py",
    "tests/test_forward_faults.py",
    "tests/test_openai.py::test_failures_are_error_spans",
    "tests/test_demo.py::test_no_nagle_stall_on_",
    # volume, threads and many drawn examples: a million spans, a thousand concurrent
    # calls, megabytes of text, hypothesis runs
    "tests/test_hardening.py::test_memory_stays_flat_over_a_million_spans",
    "tests/test_hardening.py::test_a_thousand_concurrent_async_calls",
    "tests/test_hardening.py::test_eight_threads_by_a_thousand_spans",
    "tests/test_hardening.py::test_any_attributes_give_a_usable_row_document_and_view",
    "tests/test_html_view.py::test_size_stays_bounded_for_10k_spans",
    "tests/test_attacks.py::test_each_scrubber_rule_is_linear_on_a_megabyte",
    "tests/test_attacks.py::test_eviction_does_not_undercount_a_cell",
    "tests/test_attacks.py::test_a_child_forked_while_a_lock_is_held_does_not_hang",
    "tests/test_files_hostile.py::test_a_device_is_refused_without_reading_it",
    "tests/test_collector.py::test_readers_beside_writers_see_each_span_once_in_order",
    "tests/test_collector.py::test_kept_spans_leave_nothing_for_the_garbage_collector",
    "tests/test_demo.py::test_answered_is_thread_safe_and_clears",
    "tests/test_document_schema.py::test_any_span_gives_a_valid_document",
    "tests/test_normalize.py::test_normalize_equals_semconv_span_by_span",
    # plotly figures and the explorer's linked widgets
    "tests/test_charts.py::test_dataframe_charts_escape_models_and_names",
    "tests/test_widgets.py::test_explore_",
)

#: node id prefixes marked phoenix (besides the fixture): they build Phoenix's venv
PHOENIX = ("tests/test_benchmarks.py::test_phoenix_side_by_side_runs",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    matched: set[str] = set()
    for item in items:
        marks = {MARKING_FIXTURES[name] for name in getattr(item, "fixturenames", ())
                 if name in MARKING_FIXTURES}
        for prefixes, mark in ((SLOW, "slow"), (PHOENIX, "phoenix")):
            hits = [p for p in prefixes if item.nodeid.startswith(p)]
            if hits:
                marks.add(mark)
                matched.update(hits)
        for mark in sorted(marks):
            item.add_marker(mark)
    # A prefix that names a collected file but none of its tests is stale (a renamed
    # test would quietly join the fast set): say so when whole files were collected.
    if not any("::" in arg for arg in config.args) and not config.option.keyword:
        files = {item.nodeid.split("::")[0] for item in items}
        stale = [p for p in (*SLOW, *PHOENIX)
                 if p not in matched and p.split("::")[0] in files]
        if stale:
            config.issue_config_time_warning(pytest.PytestConfigWarning(
                "tests/conftest.py marks tests that do not exist: " + ", ".join(stale)),
                stacklevel=2)
