"""Render the README's chart images from a small, real session.

The real ``openai`` client calls the local demo server (``llmtrace_nb.demo``) through the
OpenTelemetry instrumentation that ``llmtrace_nb.enable()`` turns on: three "cells" of a
notebook (a batch of summaries, an agent with retrieval and a tool, a model comparison
with one unpriced local model), then the charts of what was collected::

    python scripts/chart_images.py [OUT_DIR]      # default docs/images

writes ``cost-by-model.png``, ``latency.png`` and ``waterfall-plotly.png``. Static export
uses kaleido with the system Chromium (``BROWSER_PATH``, default ``/usr/bin/chromium``);
without kaleido it screenshots a standalone HTML page with headless Chromium instead.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

WIDTH = 960
SCALE = 2
CHROMIUM = "/usr/bin/chromium"
CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris. "
           "It was designed by Gustave Eiffel's company and built from 1887 to 1889. ") * 12


@contextmanager
def traced_cell(number: int, name: str) -> Iterator[Any]:
    """A notebook cell without IPython: the lifecycle ``%%trace`` uses."""
    from llmtrace_nb._notebook import cells, session

    sess = session.require()
    cell = cells.start_cell(sess, number, name)
    try:
        yield cell.ref
    finally:
        cells.end_cell(sess, cell)


def chat(client: Any, server: Any, model: str, prompt: str, *, latency: float,
         stream: bool = False) -> None:
    server.set_latency(latency)
    messages = [{"role": "system", "content": "Answer in one sentence."},
                {"role": "user", "content": prompt}]
    if stream:
        for _ in client.chat.completions.create(model=model, messages=messages, stream=True,
                                                stream_options={"include_usage": True}):
            pass
    else:
        client.chat.completions.create(model=model, messages=messages)


def workload(client: Any, server: Any) -> Any:
    """Three cells of a notebook; returns the agent cell's ref (for the waterfall)."""
    import openai

    import llmtrace_nb

    rng = random.Random(7)
    with traced_cell(3, "summarize docs"):
        for i in range(12):
            chat(client, server, "gpt-4o-mini", f"Summarize part {i}: {CONTEXT}",
                 latency=rng.uniform(0.15, 0.45), stream=i % 2 == 0)
    with traced_cell(4, "rag-eval") as agent_cell:
        with llmtrace_nb.span("retrieve", kind="retrieval", query="eiffel tower height"):
            server.set_latency(0)
            client.embeddings.create(model="text-embedding-3-small",
                                     input="how tall is the eiffel tower")
        for step in (1, 2):
            with llmtrace_nb.span(f"agent step {step}", kind="agent"):
                chat(client, server, "gpt-4o-mini", f"Plan step {step}. {CONTEXT}",
                     latency=rng.uniform(0.25, 0.4), stream=True)
                with llmtrace_nb.span("search", kind="tool", q="eiffel tower height"):
                    time.sleep(rng.uniform(0.08, 0.15))  # the tool's own work
        try:
            server.set_latency(0.05)
            client.with_options(max_retries=0).chat.completions.create(
                model="demo-error-429", messages=[{"role": "user", "content": "retry me"}])
        except openai.RateLimitError:
            pass
        chat(client, server, "gpt-4o", f"Answer with sources. {CONTEXT}", latency=0.6)
    with traced_cell(5, "compare models"):
        for i in range(6):
            prompt = f"Question {i}: {CONTEXT[: 200 + 150 * i]}"
            chat(client, server, "gpt-4o", prompt, latency=rng.uniform(0.45, 0.9),
                 stream=i % 2 == 1)
            chat(client, server, "o3-mini", prompt, latency=rng.uniform(0.6, 1.3))
            chat(client, server, "llama-3.1-8b-local", prompt, latency=rng.uniform(0.1, 0.3))
    return agent_cell


def export_kaleido(fig: go.Figure, path: Path, height: int) -> None:
    os.environ.setdefault("BROWSER_PATH", CHROMIUM)
    fig.write_image(path, width=WIDTH, height=height, scale=SCALE)


def export_chromium(fig: go.Figure, path: Path, height: int) -> None:
    """Screenshot a standalone page of the figure with headless Chromium (no kaleido)."""
    browser = shutil.which("chromium") or CHROMIUM
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "figure.html"
        fig.update_layout(width=WIDTH, height=height)
        fig.write_html(page, include_plotlyjs=True, full_html=True,
                       config={"staticPlot": True, "displayModeBar": False})
        subprocess.run([
            browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", f"--user-data-dir={tmp}/profile",
            "--hide-scrollbars", f"--force-device-scale-factor={SCALE}",
            "--virtual-time-budget=5000", f"--window-size={WIDTH},{height}",
            f"--screenshot={path}", page.as_uri()],
            check=True, capture_output=True, timeout=120)


def exporter() -> Callable[[go.Figure, Path, int], None]:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return export_chromium
    return export_kaleido


def main(out_dir: str = "docs/images") -> None:
    import openai

    import llmtrace_nb
    from llmtrace_nb._notebook import cells, session
    from llmtrace_nb.demo import DemoServer
    from llmtrace_nb.views import charts

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    llmtrace_nb.enable()
    with DemoServer(chunk_delay=0.02) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-demo")
        agent_cell = workload(client, server)
    calls = llmtrace_nb.llm_calls_df()
    calls = calls[~calls["model"].astype("string").str.startswith("demo-").fillna(False)]
    doc = cells.cell_document(session.require(), agent_cell)
    figures = {
        "cost-by-model.png": (charts.cost_by(calls), 400),
        "latency.png": (charts.latency(calls), 440),
        "waterfall-plotly.png": (charts.waterfall(doc), 0),
    }
    export = exporter()
    for name, (fig, height) in figures.items():
        height = height or int(fig.layout.height or 450)
        fig.update_layout(height=height)
        export(fig, out / name, height)
        print(out / name)


if __name__ == "__main__":
    main(*sys.argv[1:2])
