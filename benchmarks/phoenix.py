"""Side by side with Arize Phoenix: from the end of a traced cell to all its spans in a
pandas DataFrame.

Ours is ``llmtrace_nb.spans_df()`` in the kernel. Phoenix's is the same cell's spans
forwarded over OTLP/HTTP (``%llmtrace forward``) to ``phoenix serve`` on loopback and read
back with Phoenix's own client (``spans.get_spans_dataframe``) until every span of the
cell's trace is in it. Both are timed from one moment, the cell's last statement, on the
wall clock (``time.time()``), because Phoenix's client runs in another process: Phoenix
pins packages that clash with ours, so it has a virtual environment of its own
(tests/phoenix_server.py).

Fair to Phoenix:

- Each run gets a fresh Phoenix (an empty working directory) warmed by a small cell, so
  its project holds little besides the measured trace and nothing is cold.
- The reader is a long-lived process: imports and a first query are done before the
  measured cell, so only ingestion and reading are timed.
- It waits with a cheap query (one column, filtered to the trace), once a second, and
  reads the whole DataFrame only once that query sees every span. Polling with full reads
  instead slowed Phoenix's ingestion about threefold (5,000 spans: ~180 s, not ~60 s).
- It is told the trace id once ours is measured, so it never competes with ours for the
  CPU; Phoenix's figure is thereby late by at most ours (the poll count shows whether
  the first look already found everything).

Ours in the same cell pays for forwarding: the exporter thread encodes the cell's spans
for Phoenix while the cell-end work runs, and Phoenix ingests on the same machine. So
each run also times ours in a cell of the same size with forwarding off (``ours_alone``).

    python -m benchmarks.phoenix [--spans N] [--repeats R]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import llmtrace_nb

# The test suite's Phoenix: its venv and `phoenix serve` on free loopback ports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from phoenix_server import phoenix_python, serve

TARGET = 50.0  # docs/ARCHITECTURE.md, "Performance targets": ours ≥ 50× faster
DEADLINE_S = 300.0
# Phoenix's default is 1000 rows: a DataFrame short of spans, silently.
LIMIT = 1_000_000
# Between the reader's looks. Each look costs Phoenix CPU it would spend ingesting (at
# 0.2 s, 5,000 spans took it 66-87 s; at 1 s, 56-59 s): one a second is fair to Phoenix,
# and late by at most a second, ~2 % of its figure.
POLL_S = 1.0

# Runs in the Phoenix venv. Prints "ready" once imported and warmed, then for each request
# line "TRACE_ID WANT DEADLINE" waits until the trace has WANT spans and reads the
# project's DataFrame, answering with one JSON line: the wall-clock moments the cheap
# query saw them all and the full DataFrame held them all, the looks it took, and the
# span ids of the trace in that DataFrame.
READER = f"""
import json, sys, time
from phoenix.client import Client
from phoenix.client.types.spans import SpanQuery

spans = Client(base_url=sys.argv[1]).spans

def frame(query=None):
    df = spans.get_spans_dataframe(query=query, project_identifier="default", limit={LIMIT},
                                   timeout=120)
    return df if df.empty or "context.span_id" in df.columns else df.reset_index()

frame()
print("ready", flush=True)
for line in sys.stdin:
    trace_id, want, deadline = line.split()
    want, deadline, polls = int(want), float(deadline), 0
    probe = SpanQuery().select("trace_id").where(f"trace_id == '{{trace_id}}'")
    while True:
        polls += 1
        if len(frame(probe)) >= want:
            visible = time.time()
            df = frame()
            mine = df[df["context.trace_id"] == trace_id]
            if len(mine) >= want:
                print(json.dumps({{"at": time.time(), "visible_at": visible, "polls": polls,
                                  "rows": len(df),
                                  "span_ids": mine["context.span_id"].tolist()}}), flush=True)
                break
        if time.time() > deadline:
            print(json.dumps({{"at": None, "polls": polls,
                              "seen": len(frame(probe))}}), flush=True)
            break
        time.sleep({POLL_S})
"""


def cell_source(n: int) -> str:
    """A ``%%trace`` cell making ``n`` LLM spans; its last statement records the moment
    it ends (and, just before, its trace id: the cell root is the current span)."""
    return (
        "%%trace phoenix-bench --quiet\n"
        "import time, llmtrace_nb\n"
        "from opentelemetry import trace as _otel_trace\n"
        f"for i in range({n}):\n"
        "    with llmtrace_nb.span('openai.chat', kind='llm', **{\n"
        "            'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai',\n"
        "            'gen_ai.request.model': 'gpt-4o-mini',\n"
        "            'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',\n"
        "            'gen_ai.usage.input_tokens': 100 + i % 50,\n"
        "            'gen_ai.usage.output_tokens': 20 + i % 10}):\n"
        "        pass\n"
        "_bench_trace_id = format(_otel_trace.get_current_span().get_span_context().trace_id,"
        " '032x')\n"
        "_bench_cell_end = time.time()\n"
    )


@dataclass
class Run:
    """One run's seconds from cell end, and what the reader saw."""

    ours_s: float  # spans_df() complete, same cell as Phoenix's (forwarding on)
    phoenix_s: float  # Phoenix's DataFrame read back holding every span of that cell
    phoenix_visible_s: float  # Phoenix's cheap query first saw every span (ingestion)
    ours_alone_s: float  # spans_df() complete for a like cell with forwarding off
    polls: int  # looks until complete; 1 means it was done before it was asked
    phoenix_rows: int  # rows of Phoenix's whole DataFrame (the warm-up cell included)


class _Reader:
    """Phoenix's client in the Phoenix venv, as a long-lived process answering requests."""

    def __init__(self, url: str, workdir: Path) -> None:
        self._stderr_path = workdir / "reader.err"
        self._stderr: IO[str] = open(self._stderr_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen([str(phoenix_python()), "-c", READER, url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True)
        if self._line() != "ready":
            raise RuntimeError(f"Phoenix reader did not start:\n{self._tail()}")

    def wait_for(self, trace_id: str, want: int, deadline_s: float) -> dict[str, Any]:
        """Block until Phoenix's DataFrame holds ``want`` spans of the trace; raise if it
        does not within ``deadline_s``."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{trace_id} {want} {time.time() + deadline_s}\n")
        self.proc.stdin.flush()
        answer = json.loads(self._line() or "null")
        if answer is None:
            raise RuntimeError(f"Phoenix reader died:\n{self._tail()}")
        if answer["at"] is None:
            raise RuntimeError(f"Phoenix showed {answer['seen']} of {want} spans of trace "
                               f"{trace_id} after {deadline_s:.0f} s ({answer['polls']} looks)")
        return answer

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def _tail(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def _shell() -> InteractiveShell:
    shell = InteractiveShell.instance()
    with capture_output():
        shell.run_line_magic("load_ext", "llmtrace_nb")  # a no-op if it is loaded
    return shell


def _forward(shell: InteractiveShell, target: str) -> None:
    with capture_output():
        shell.run_line_magic("llmtrace", f"forward {target}")


def _run_cell(shell: InteractiveShell, n: int) -> tuple[float, str, int]:
    """Run the cell; return its end moment, its trace id and its execution count."""
    gc.collect()
    with capture_output():
        result = shell.run_cell(cell_source(n), store_history=True)
    result.raise_error()
    return (shell.user_ns["_bench_cell_end"], shell.user_ns["_bench_trace_id"],
            result.execution_count)


def _ours(shell: InteractiveShell, n: int) -> tuple[float, float, set[str]]:
    """Run a cell of ``n`` spans and take spans_df(); return the cell's end moment, the
    seconds from it to the DataFrame, and the span ids of the cell (checked complete)."""
    cell_end, trace_id, count = _run_cell(shell, n)
    frame = llmtrace_nb.spans_df()
    seconds = time.time() - cell_end
    mine = frame[frame["trace_id"] == trace_id]
    if len(mine) != n + 1 or not (mine["cell"] == count).all():
        raise RuntimeError(f"spans_df() holds {len(mine)} spans of cell {count}'s trace, "
                           f"expected {n + 1}")
    return cell_end, seconds, set(mine["span_id"])


def one_run(shell: InteractiveShell, n: int, deadline_s: float = DEADLINE_S) -> Run:
    """A cell of ``n`` spans forwarded to a fresh Phoenix: ours and Phoenix's times from
    that cell's end; and ours for a like cell without forwarding."""
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-") as tmp, serve(Path(tmp)) as url:
        reader = _Reader(url, Path(tmp))
        try:
            _forward(shell, "off")
            _, ours_alone, _ = _ours(shell, n)
            _forward(shell, url)
            # Warm-up: Phoenix's ingestion and project, the reader's query, our exporter.
            _, warm_trace, _ = _run_cell(shell, 10)
            reader.wait_for(warm_trace, 11, deadline_s)

            cell_end, ours, span_ids = _ours(shell, n)
            trace_id = shell.user_ns["_bench_trace_id"]
            answer = reader.wait_for(trace_id, n + 1, deadline_s)
            if set(answer["span_ids"]) != span_ids:
                raise RuntimeError("Phoenix's spans of the trace are not the cell's spans")
            return Run(ours, answer["at"] - cell_end, answer["visible_at"] - cell_end,
                       ours_alone, answer["polls"], answer["rows"])
        finally:
            reader.close()
            _forward(shell, "off")


def runs(n: int = 5000, repeats: int = 1) -> list[Run]:
    """``repeats`` runs of :func:`one_run` in one shell, each with its own Phoenix."""
    shell = _shell()
    return [one_run(shell, n) for _ in range(repeats)]


def side_by_side(n: int = 5000, repeats: int = 1) -> tuple[list[float], list[float]]:
    """Seconds from cell end to a DataFrame with all ``n`` spans (+ the cell root), per
    run: (ours, Phoenix's), both from the same cell."""
    done = runs(n, repeats)
    return [r.ours_s for r in done], [r.phoenix_s for r in done]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    done = runs(args.spans, args.repeats)
    for i, r in enumerate(done, 1):
        print(f"run {i}: ours {r.ours_s:.3f} s (forwarding off: {r.ours_alone_s:.3f} s), "
              f"Phoenix {r.phoenix_s:.2f} s (all visible at {r.phoenix_visible_s:.2f} s, "
              f"{r.polls} looks, {r.phoenix_rows:,} rows)")

    def med(field: str) -> float:
        return statistics.median(getattr(r, field) for r in done)

    ours, alone, phoenix = med("ours_s"), med("ours_alone_s"), med("phoenix_s")
    ratio = phoenix / ours
    print(f"cell end → all {args.spans:,} spans in a DataFrame (median of {len(done)}):\n"
          f"  llmtrace_nb.spans_df()                 {ours:8.3f} s\n"
          f"  OTLP → Phoenix → get_spans_dataframe   {phoenix:8.3f} s\n"
          f"  ratio {ratio:,.1f}× (target ≥ {TARGET:.0f}×: "
          f"{'met' if ratio >= TARGET else 'not met'})\n"
          f"  (ours with forwarding off: {alone:.3f} s, {phoenix / alone:,.1f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
