"""From a shell, without a kernel:

- ``python -m llmtrace_nb forward FILE --endpoint URL``: replay a saved file to a backend;
- ``python -m llmtrace_nb summary PATH…``: the summary table of executed notebooks' traces
  (or saved files), e.g. in the log of a CI job that ran a notebook with papermill.
"""

from __future__ import annotations

import argparse
import math
import sys

import pandas as pd

from ._ship import files
from ._ship.forward import ForwardConfigError, make_config, make_exporter
from ._ship.policy import REDACT_MODES, PolicyExporter

BATCH = 512


def forward(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmtrace_nb forward",
                                     description="Send spans saved as OTLP JSON lines to an "
                                                 "OTLP backend.")
    parser.add_argument("file")
    parser.add_argument("--endpoint", required=True,
                        help="collector base URL (http://host:4318) or full traces URL")
    parser.add_argument("--protocol", default="http/protobuf", choices=["http/protobuf", "grpc"])
    parser.add_argument("--header", action="append", default=[], metavar="K=V")
    parser.add_argument("--redact", default="none", choices=REDACT_MODES)
    args = parser.parse_args(argv)
    try:
        config = make_config(args.endpoint, protocol=args.protocol, headers=args.header,
                             redact=args.redact)
        loaded = files.load(args.file)
    except (ForwardConfigError, files.TraceFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Secrets are scrubbed (and content redacted) on the way out, as from a notebook.
    exporter = PolicyExporter(make_exporter(config), redact=config.redact)
    spans = [span for span, _ in loaded.entries]
    sent = failed = 0
    for i in range(0, len(spans), BATCH):
        batch = spans[i:i + BATCH]
        ok = exporter.export(batch).name == "SUCCESS"
        sent, failed = (sent + len(batch), failed) if ok else (sent, failed + len(batch))
    exporter.shutdown()
    noun = "span" if sent == 1 else "spans"
    print(f"sent {sent:,} {noun} to {config.endpoint}" + (f", {failed:,} failed" if failed else ""))
    return 0 if not failed else 1


def summary(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmtrace_nb summary",
        description="Print the LLM calls, tokens, cost and latency of the traces saved in "
                    "executed notebooks (or OTLP JSON lines files), grouped by model.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="an .ipynb or a .jsonl file")
    parser.add_argument("--by", default="model",
                        help="llm_calls_df() columns to group by, comma-separated "
                             "(default: model)")
    args = parser.parse_args(argv)
    from ._capture.collector import SpanCollector
    from ._shape import frames
    from ._shape.pricing import PriceBook
    from ._ship import notebooks

    entries, cells = [], []
    try:
        for path in args.paths:
            if path.lower().endswith(".ipynb"):
                book = notebooks.read(path)
                for note in book.notes:
                    print(f"note: {path}: {note}", file=sys.stderr)
                loaded: files.Loaded = book
            else:
                loaded = files.load(path)
            entries += loaded.entries
            cells += loaded.cells
    except (files.TraceFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not entries:
        print(f"no traces in {', '.join(args.paths)} (was it executed with %%trace cells "
              "and saved with their outputs?)", file=sys.stderr)
        return 1
    collector = SpanCollector(max_spans=max(len(entries), 1))
    collector.add_entries(entries, cells)
    spans = frames.FrameBuilder(collector, PriceBook()).spans(capture_content=False)
    calls = frames.llm_calls(spans)
    try:
        table = frames.summary(calls, by=[k.strip() for k in args.by.split(",") if k.strip()])
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    print(summary_text(table, len(calls), len({c.seq for c in cells})))
    return 0


def dollars(value: float) -> str:
    """A cost with four significant digits and at least cents: $0.00002060, $1.234, $12.30."""
    if value == 0:
        return "$0.00"
    decimals = max(2, 3 - math.floor(math.log10(abs(value))))
    return f"${value:,.{decimals}f}"


#: what summary_text calls the columns: short, so a model's row fits in 100 columns
SHORT_HEADS = {"input_tokens": "in tok", "output_tokens": "out tok", "cost_usd": "cost",
               "latency_p50_ms": "p50 ms", "latency_p95_ms": "p95 ms",
               "ttft_p50_ms": "TTFT ms", "tokens_per_s": "tok/s"}
#: the widest text summary_text writes, for a model name up to 24 characters
WIDTH = 100


def summary_text(table: pd.DataFrame, n_calls: int, n_cells: int) -> str:
    """The summary table as a shell reads it: rounded, costs in dollars, one block no
    wider than ``WIDTH`` for the usual model names (CI logs, ``make demo``)."""
    cost = table["cost_usd"].sum(min_count=1)
    head = (f"{n_calls:,} LLM call{'s' if n_calls != 1 else ''} in {n_cells:,} traced "
            f"cell{'s' if n_cells != 1 else ''}"
            + (f", {dollars(cost)}" if pd.notna(cost) else ", cost unknown"))
    shown = table.copy()
    shown["cost_usd"] = shown["cost_usd"].map(lambda v: dollars(v) if pd.notna(v) else "no price")
    for column in ("latency_p50_ms", "latency_p95_ms", "ttft_p50_ms"):
        shown[column] = shown[column].map(lambda v: f"{v:,.0f}" if pd.notna(v) else "-")
    shown["tokens_per_s"] = shown["tokens_per_s"].map(
        lambda v: f"{v:,.1f}" if pd.notna(v) else "-")
    shown = shown.rename(columns=SHORT_HEADS)
    with pd.option_context("display.width", WIDTH, "display.max_columns", None,
                           "display.max_colwidth", 40):
        return head + "\n" + shown.to_string()


USAGE = ("usage: python -m llmtrace_nb forward FILE --endpoint URL [--protocol P] "
         "[--header K=V] [--redact none|hash|drop]\n"
         "       python -m llmtrace_nb summary PATH... [--by COLUMNS]")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"forward": forward, "summary": summary}
    if not argv or argv[0] not in commands:
        print(USAGE, file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
