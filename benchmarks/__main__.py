"""Measure the performance targets and write benchmarks/RESULTS.md.

`python -m benchmarks` runs the full set; `--quick` runs every case once on small sizes
(what `make test` does, to prove the benchmarks still run). Ratios are measured side by
side in one process, so machine speed cancels out.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_nb.collector import SpanCollector
from llmtrace_nb.frames import FrameBuilder
from llmtrace_nb.pricing import PriceBook

HERE = Path(__file__).resolve().parent
ATTRS = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
         "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20}


@dataclass
class Result:
    case: str
    target: str
    runs: list[float]
    unit: str
    met: bool | None

    def row(self) -> str:
        med = statistics.median(self.runs)
        met = "–" if self.met is None else ("met" if self.met else "not met")
        return (f"| {self.case} | {self.target} | {med:,.3f} {self.unit} "
                f"({min(self.runs):,.3f}–{max(self.runs):,.3f}) | {met} |")


def span_cost_us(provider: TracerProvider, n: int) -> float:
    tracer = provider.get_tracer("bench")
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("openai.chat", attributes=ATTRS):
            pass
    return (time.perf_counter() - start) / n * 1e6


def per_span_overhead(n: int, repeats: int) -> list[Result]:
    bare, ours, memory = [], [], []
    for _ in range(repeats):
        p_bare = TracerProvider()
        p_ours = TracerProvider()
        p_ours.add_span_processor(SpanCollector(max(n, 1)))
        p_mem = TracerProvider()
        p_mem.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        # interleaved, so drift of the machine hits all three alike
        bare.append(span_cost_us(p_bare, n))
        ours.append(span_cost_us(p_ours, n))
        memory.append(span_cost_us(p_mem, n))
    ratio = [100 * (o / b - 1) for o, b in zip(ours, bare, strict=True)]
    ratio_mem = [100 * (m / b - 1) for m, b in zip(memory, bare, strict=True)]
    return [
        Result("bare SDK span, no processor", "(baseline)", bare, "µs", None),
        Result("span with the collector", "(absolute)", ours, "µs", None),
        Result("collector overhead vs bare span", "≤ 10 %", ratio, "%",
               statistics.median(ratio) <= 10),
        Result("SimpleSpanProcessor + InMemorySpanExporter vs bare", "(reference)", ratio_mem,
               "%", None),
    ]


def filled(n: int) -> tuple[TracerProvider, SpanCollector, FrameBuilder]:
    collector = SpanCollector(max(n * 2, 10))
    provider = TracerProvider()
    provider.add_span_processor(collector)
    tracer = provider.get_tracer("bench")
    for i in range(n):
        with tracer.start_as_current_span("openai.chat", attributes=ATTRS | {
                "gen_ai.request.model": ("gpt-4o-mini", "gpt-4o", "o3-mini")[i % 3]}):
            pass
    return provider, collector, FrameBuilder(collector, PriceBook())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def frames_cases(sizes: list[int], repeats: int) -> list[Result]:
    results = []
    for n in sizes:
        cold, incr = [], []
        for _ in range(repeats):
            provider, _, frames = filled(n)
            cold.append(timed(frames.spans))
            tracer = provider.get_tracer("bench")
            for _ in range(1_000):
                with tracer.start_as_current_span("openai.chat", attributes=ATTRS):
                    pass
            incr.append(timed(frames.spans) * 1000)
        target = "≤ 0.5 s" if n == 100_000 else ""
        results.append(Result(f"spans_df() cold at {n:,} spans", target or "(scale)", cold, "s",
                              statistics.median(cold) <= 0.5 if n == 100_000 else None))
        results.append(Result(f"spans_df() after 1k new spans ({n:,} kept)",
                              "≤ 20 ms" if n == 100_000 else "(scale)", incr, "ms",
                              statistics.median(incr) <= 20 if n == 100_000 else None))
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pkgs = ", ".join(f"{p} {version(p)}" for p in (
        "opentelemetry-sdk", "pandas", "numpy", "genai-prices"))
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; {pkgs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        results = per_span_overhead(2_000, 1) + frames_cases([2_000], 1)
    else:
        results = per_span_overhead(20_000, 7) + frames_cases([10_000, 100_000], 3)
    header = ["| case | target | median (min–max) | |", "|---|---|---|---|"]
    table = "\n".join(header + [r.row() for r in results])
    print(table)
    if not args.quick:
        args.out.write_text(
            f"# Benchmark results\n\nMachine: {machine()}\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} with `make bench`.\n\n{table}\n",
            encoding="utf-8")
        print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
