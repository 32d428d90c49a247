"""``python -m llmtrace_nb forward FILE --endpoint URL``: replay a saved file to a backend."""

from __future__ import annotations

import argparse
import sys

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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "forward":
        print("usage: python -m llmtrace_nb forward FILE --endpoint URL [--protocol P] "
              "[--header K=V] [--redact none|hash|drop]", file=sys.stderr)
        return 2
    return forward(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
