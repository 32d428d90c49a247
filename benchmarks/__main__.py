"""Measure the performance targets and write benchmarks/RESULTS.md.

`python -m benchmarks` runs the full set, each case group in a fresh interpreter (as pyperf
runs its benchmarks), so no case inherits a heap another one fragmented; ratios are
measured side by side inside their group, so machine speed cancels out. `--case NAME` runs
one group; `--quick` runs every case once on small sizes in this process (what `make test`
does, to prove the benchmarks still run; the Phoenix side by side runs there small, from
tests/test_benchmarks.py).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import set_span_in_context

from llmtrace_nb._capture.collector import CellRef, SpanCollector
from llmtrace_nb._shape import document
from llmtrace_nb._shape.frames import FrameBuilder, is_call, llm_calls, summary
from llmtrace_nb._shape.pricing import PriceBook
from llmtrace_nb.views import html as html_view

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
    """CPU time per span of this thread: other processes on the machine do not count."""
    tracer = provider.get_tracer("bench")
    start = time.thread_time()
    for _ in range(n):
        with tracer.start_as_current_span("openai.chat", attributes=ATTRS):
            pass
    return (time.thread_time() - start) / n * 1e6


def _paired(make: Callable[[], TracerProvider], n: int, block: int
            ) -> tuple[list[float], list[float]]:
    """A bare provider and ``make()``'s take turns in blocks of spans; µs per span of each.

    Each pair runs on its own, then is dropped: a variant that retains objects makes the
    garbage collector slower for whatever runs beside it, so variants are not mixed.
    """
    bare, other = TracerProvider(), make()
    gc.collect()
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(1, n // block)):
        runs[0].append(span_cost_us(bare, block))
        runs[1].append(span_cost_us(other, block))
    return runs


def _variants(n: int) -> dict[str, Callable[[], TracerProvider]]:
    def with_processor(processor: Any) -> Callable[[], TracerProvider]:
        def make() -> TracerProvider:
            provider = TracerProvider()
            provider.add_span_processor(processor())
            return provider
        return make

    def in_cell() -> SpanCollector:
        collector = SpanCollector(max(n, 1))
        collector.active_cell = CellRef(number=1, name="cell [1]")  # on_start stamps it
        return collector

    def with_store() -> SpanCollector:
        """The collector as a session has it: the store's writer copying what it appends
        every half second, on its own thread (whose CPU time is not the caller's)."""
        from llmtrace_nb._keep.store import Store
        from llmtrace_nb._keep.writer import StoreWriter

        collector = SpanCollector(max(n, 1))
        folder = tempfile.mkdtemp(prefix="llmtrace-bench-")
        atexit.register(shutil.rmtree, folder, True)
        store = Store(Path(folder) / "spans.sqlite")
        writer = StoreWriter(collector, store, store.begin_session(time.time_ns(), None,
                                                                   "bench.ipynb"),
                             content=lambda: True)
        atexit.register(writer.close)
        return collector

    ours = with_processor(lambda: SpanCollector(max(n, 1)))
    return {
        "ours": ours,
        "store": with_processor(with_store),
        "in_cell": with_processor(in_cell),
        # a bound of a tenth of the run: most spans evict the oldest one
        "full": with_processor(lambda: SpanCollector(max(n // 10, 1))),
        "memory": with_processor(lambda: SimpleSpanProcessor(InMemorySpanExporter())),
        "aged": ours,
    }


def _age_heap(n: int) -> None:
    """Let the SDK's own exporter keep n spans, then free them: the heap that leaves
    behind (pools with scattered free blocks) makes anything that keeps objects
    afterwards pay cache misses, as in a long session that freed what it no longer
    needs."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    span_cost_us(provider, n)
    del provider
    gc.collect()


def variant_run(name: str, n: int, block: int = 1_000) -> tuple[list[float], list[float]]:
    """One run of one variant: (bare µs per span, variant µs per span) per block.
    "aged" is our collector in a heap aged by the SDK's exporter (``_age_heap``)."""
    if name == "aged":
        _age_heap(n)
    return _paired(_variants(n)[name], n, block)


def per_span_overhead(n: int, repeats: int, block: int = 1_000,
                      run: Callable[[str, int, int], tuple[list[float], list[float]]]
                      = variant_run) -> list[Result]:
    """`repeats` runs per variant, each keeping one provider (so retained spans pile up as
    in a session, n of them) taking turns with a bare provider.

    The figure is the whole run's CPU time over the bare provider's: the garbage
    collector's full collections, which retained objects trigger every so often, land
    in a few blocks only, and a median over blocks would leave them out. The median
    over blocks is shown beside it as the steady per-span cost. ``run`` makes one run of
    a variant (the full benchmark gives each its own interpreter: a run that frees 100k
    kept spans ages the heap for every later one in the process, as the "aged" row
    shows); by default the runs share this process.
    """
    # interleaved, so a busy spell of the host hits every variant alike
    order = [name for _ in range(repeats) for name in ("ours", "in_cell", "store", "full",
                                                       "memory", "aged")]
    bare: list[float] = []
    absolute: dict[str, list[float]] = {name: [] for name in _variants(n)}
    whole: dict[str, list[float]] = {name: [] for name in absolute}
    steady: dict[str, list[float]] = {name: [] for name in absolute}
    for name in order:
        base, runs = run(name, n, block)
        if name != "aged":
            bare.append(statistics.median(base))
        absolute[name].append(statistics.mean(runs))
        whole[name].append(100 * (sum(runs) / sum(base) - 1))
        steady[name].append(statistics.median(
            [100 * (o / b - 1) for o, b in zip(runs, base, strict=True)]))
        gc.collect()
    ours_runs, in_cell_runs = whole["ours"], whole["in_cell"]
    return [
        Result("bare SDK span, no processor (CPU time)", "(baseline)", bare, "µs", None),
        Result("span with the collector (CPU time, whole run)", "(absolute)",
               absolute["ours"], "µs", None),
        Result("collector overhead vs bare span (whole run, GC included)", "≤ 10 %",
               ours_runs, "%", statistics.median(ours_runs) <= 10),
        Result("collector overhead vs bare span, inside a traced cell (whole run)",
               "≤ 10 %", in_cell_runs, "%", statistics.median(in_cell_runs) <= 10),
        Result("collector overhead vs bare span, local store on (the caller's thread; the "
               "writer's own thread is the store rows' throughput)", "≤ 10 %",
               whole["store"], "%", statistics.median(whole["store"]) <= 10),
        Result("collector overhead vs bare span, buffer full (each span evicts one)",
               "(reference)", whole["full"], "%", None),
        Result("collector overhead, median block (steady cost, GC spikes left out)",
               "(reference)", steady["ours"], "%", None),
        Result("SimpleSpanProcessor + InMemorySpanExporter vs bare (whole run)",
               "(reference)", whole["memory"], "%", None),
        Result("collector overhead after the SDK exporter's run freed its spans",
               "(reference)", whole["aged"], "%", None),
    ]


def _in_fresh_interpreter(*args: str) -> Any:
    """What ``python -m benchmarks ARGS --case-out FILE`` wrote to FILE."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run([sys.executable, "-m", "benchmarks", *args, "--case-out", str(out)],
                       check=True, cwd=HERE.parent)
        return json.loads(out.read_text(encoding="utf-8"))


def _isolated_variant_run(name: str, n: int, block: int = 1_000
                          ) -> tuple[list[float], list[float]]:
    base, runs = _in_fresh_interpreter("--variant-run", name, "--spans", str(n),
                                       "--block", str(block))
    return base, runs


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
        for _ in range(repeats if n < 1_000_000 else 1):
            provider, _, frames = filled(n)
            cold.append(timed(frames.spans))
            tracer = provider.get_tracer("bench")
            for _ in range(1_000):
                with tracer.start_as_current_span("openai.chat", attributes=ATTRS):
                    pass
            incr.append(timed(frames.spans) * 1000)
            del provider, frames
        target = n == 100_000
        results.append(Result(f"spans_df() cold at {n:,} spans", "≤ 0.5 s" if target
                              else "(scale)", cold, "s",
                              statistics.median(cold) <= 0.5 if target else None))
        results.append(Result(f"spans_df() after 1k new spans ({n:,} kept)",
                              "≤ 20 ms" if target else "(scale)", incr, "ms",
                              statistics.median(incr) <= 20 if target else None))
    return results


def aged_frames_case(n: int, repeats: int) -> list[Result]:
    """spans_df() cold at n spans in a heap aged by the SDK's exporter (``_age_heap``)."""
    _age_heap(n)
    cold = []
    for _ in range(repeats):
        _, _, frames = filled(n)
        cold.append(timed(frames.spans))
        del frames
    return [Result(f"spans_df() cold at {n:,} spans, heap aged by {n:,} freed SDK spans",
                   "(reference)", cold, "s", None)]


def analysis_cases(n: int, repeats: int) -> list[Result]:
    """llm_calls_df() + summary() over n spans already converted (repeated analysis)."""
    _, _, frames = filled(n)
    frames.spans()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        # as llmtrace_nb.llm_calls_df() and summary() read them: the calls copied for
        # the caller, summary() from the shared frame
        llm_calls(frames.spans(where=is_call))
        summary(llm_calls(frames.spans(shared=True)))
        runs.append((time.perf_counter() - start) * 1000)
    return [Result(f"llm_calls_df() + summary() at {n:,} spans", "(scale)", runs, "ms", None)]


def content_case(n: int, repeats: int) -> list[Result]:
    """Cold spans_df() of LLM spans that carry their messages (JSON parsed per span)."""
    runs = []
    for _ in range(repeats):
        collector = SpanCollector(n)
        provider = TracerProvider()
        provider.add_span_processor(collector)
        tracer = provider.get_tracer("bench")
        attrs = ATTRS | {"gen_ai.provider.name": "openai", "gen_ai.input.messages": CHAT,
                         "gen_ai.output.messages": ANSWER}
        for _ in range(n):
            with tracer.start_as_current_span("openai.chat", attributes=attrs):
                pass
        runs.append(timed(FrameBuilder(collector, PriceBook()).spans))
    return [Result(f"spans_df() cold at {n:,} LLM spans with messages", "(scale)", runs, "s",
                   None)]


PROMPT = json.dumps([{"role": "user", "parts": [{"type": "text",
                                                 "content": "lorem ipsum " * 400}]}])
CHAT = json.dumps([{"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                   {"role": "user", "parts": [{"type": "text",
                                               "content": "What is the capital of France?"}]}])
ANSWER = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}],
                      "finish_reason": "stop"}])


def cell_spans(n: int) -> pd.DataFrame:
    """spans_df() of one cell with n spans: a root, agents of 9 LLM calls with long prompts
    (the shape of tests/docs.py:big_doc)."""
    collector = SpanCollector(n + 10)
    provider = TracerProvider()
    provider.add_span_processor(collector)
    tracer = provider.get_tracer("bench")
    t = t0 = 1_700_000_000_000_000_000
    root = tracer.start_span("cell", attributes={"llmtrace.kind": "cell"}, start_time=t0)
    made = 1
    while made < n:
        agent = tracer.start_span("agent", context=set_span_in_context(root), start_time=t,
                                  attributes={"llmtrace.kind": "agent"})
        made += 1
        for _ in range(min(9, n - made)):
            tracer.start_span("openai.chat", context=set_span_in_context(agent), start_time=t,
                              attributes=ATTRS | {"gen_ai.provider.name": "openai",
                                                  "gen_ai.input.messages": PROMPT,
                                                  "gen_ai.output.messages": ANSWER}
                              ).end(end_time=t + 5_000_000)
            t += 5_000_000
            made += 1
        agent.end(end_time=t)
    root.end(end_time=t + 1_000_000)
    return FrameBuilder(collector, PriceBook()).spans()


def trace_view_cases(sizes: list[int], repeats: int) -> list[Result]:
    """document.build + html.render of one cell, timed apart from making its spans."""
    results = []
    for n in sizes:
        frame = cell_spans(n)
        total, render = [], []
        for _ in range(repeats):
            gc.collect()
            start = time.perf_counter()
            doc = document.build(frame, name="bench", cell=1)
            built = time.perf_counter()
            page = html_view.render(doc)
            total.append((time.perf_counter() - start) * 1000)
            render.append((time.perf_counter() - built) * 1000)
        limit = {1_000: 150.0, 10_000: 1_500.0}.get(n)
        target = f"≤ {limit:,.0f} ms" if limit else "(scale)"
        results.append(Result(f"trace view of a {n:,}-span cell (document + HTML)", target,
                              total, "ms", statistics.median(total) <= limit if limit else None))
        results.append(Result(f"trace view of a {n:,}-span cell: html.render alone",
                              "(part of the above)", render, "ms", None))
        if n == 10_000:
            sizes_mb = {"document JSON": len(document.to_json(doc).encode()) / 1e6,
                        "HTML": len(page.encode()) / 1e6}
            results += [Result(f"trace view of a {n:,}-span cell: {what} size", "≤ 3 MB",
                               [mb], "MB", mb <= 3) for what, mb in sizes_mb.items()]
    return results


def forwarding_cases(repeats: int, spans: int) -> list[Result]:
    from .forwarding import added_cell_ms, throughput

    added = added_cell_ms(repeats)
    results = [Result(f"traced cell, {kind} OTLP endpoint: added time", "≤ 10 ms", runs,
                      "ms", statistics.median(runs) <= 10) for kind, runs in added.items()]
    rate = [throughput(spans) for _ in range(max(1, repeats // 3))]
    results.append(Result(f"forwarding throughput to a local OTLP receiver ({spans:,} spans)",
                          "(reference)", rate, "spans/s", None))
    return results


def phoenix_cases(n: int, repeats: int) -> list[Result]:
    """Cell end → every span in a DataFrame: ours vs OTLP into Arize Phoenix and its span
    DataFrame read back (benchmarks/phoenix.py has the method)."""
    from .phoenix import TARGET, runs

    done = runs(n, repeats)
    ours = [r.ours_s for r in done]
    phoenix = [r.phoenix_s for r in done]
    ratio = [p / o for p, o in zip(phoenix, ours, strict=True)]
    return [
        Result(f"cell end → {n:,} spans in spans_df() (same cell forwarded to Phoenix)",
               "(absolute)", ours, "s", None),
        Result(f"cell end → {n:,} spans in spans_df() (forwarding off)", "(absolute)",
               [r.ours_alone_s for r in done], "s", None),
        Result(f"cell end → {n:,} spans in Phoenix's span DataFrame (OTLP, loopback)",
               "(absolute)", phoenix, "s", None),
        Result("Phoenix time / ours, per run", f"≥ {TARGET:.0f}×", ratio, "×",
               statistics.median(ratio) >= TARGET),
    ]


def memory_per_span(n: int) -> list[Result]:
    """Bytes retained per collected LLM span (the span itself included), via tracemalloc."""
    import tracemalloc

    attrs = ATTRS | {"gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o-mini",
                     "gen_ai.usage.total_tokens": 120, "gen_ai.response.finish_reasons":
                     ("stop",), "gen_ai.is_streaming": False}
    collector = SpanCollector(n)
    provider = TracerProvider()
    provider.add_span_processor(collector)
    tracer = provider.get_tracer("bench")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        with tracer.start_as_current_span("openai.chat", attributes=attrs):
            pass
    gc.collect()
    per_span = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    return [Result(f"memory per retained LLM span ({n:,} kept)", "≤ 4 KB", [per_span / 1024],
                   "KB", per_span <= 4096)]


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


#: the full run's case groups, in order; each runs in a fresh interpreter
def _cell_with_live_line(n: int, live: bool) -> float:
    """Seconds for a traced cell of ``n`` LLM spans plus its view's frame, with the live
    line's thread looking at it (as in a kernel) or not (``--quiet``)."""
    import threading

    from llmtrace_nb.views import live as live_line

    collector = SpanCollector(max(n * 2, 10))
    provider = TracerProvider()
    provider.add_span_processor(collector)
    frames = FrameBuilder(collector, PriceBook())
    ref = CellRef(number=1, name="live")
    collector.register_cell(ref)
    tracer = provider.get_tracer("bench")
    stop = threading.Event()

    def look() -> None:  # LiveLine._run without the display
        wait = live_line.TICK_SECONDS
        while not stop.wait(wait):
            began = time.perf_counter()
            live_line.live_text("live", frames.cell_totals(ref.seq), 1.0)
            wait = max(live_line.TICK_SECONDS,
                       (time.perf_counter() - began) / live_line.MAX_SHARE)

    thread = threading.Thread(target=look, daemon=True)
    start = time.perf_counter()
    collector.active_cell = ref
    if live:
        thread.start()
    for _ in range(n):
        with tracer.start_as_current_span("openai.chat", attributes=ATTRS):
            pass
    collector.active_cell = None
    stop.set()
    if live:
        thread.join()
    frames.spans()  # what the cell's view needs at its end
    return time.perf_counter() - start


def live_line_case(n: int, repeats: int) -> list[Result]:
    """A span-heavy traced cell with the live line vs ``--quiet``, paired runs."""
    ratios = []
    for _ in range(repeats):
        quiet = _cell_with_live_line(n, live=False)
        ratios.append(_cell_with_live_line(n, live=True) / quiet)
    return [Result(f"traced cell of {n:,} LLM spans: live line / --quiet (cell + its view)",
                   "≤ 1.10", ratios, "×", statistics.median(ratios) <= 1.10)]


def scrub_cases(size: int = 1_000_000) -> list[Result]:
    """Each scrubber pattern on its worst adversarial megabyte (tests/test_attacks.py)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from llmtrace_nb._read import scrub

    from test_attacks import adversarial, best_ms

    texts = adversarial(size)
    # a text full of secrets costs per secret replaced (~2 µs each): it is the searching
    # that must stay fast, so the target is on texts where a rule finds nothing to replace
    scans, replacing = [], []
    for rule in scrub.RULES:
        times = [(best_ms(rule, t, 3),
                  rule.pattern.search(t.lower() if rule.lowercase else t) is not None)
                 for t in texts]
        scans.append(max(ms for ms, found in times if not found))
        replacing.append(max((ms for ms, found in times if found), default=0.0))
    return [Result("scrubber: slowest rule on its worst adversarial megabyte (nothing to "
                   "replace)", "< 50 ms", [max(scans)], "ms", max(scans) < 50),
            Result("scrubber: slowest rule on a megabyte full of secrets it replaces",
                   "(reference)", [max(replacing)], "ms", None)]


def saved_output_cases() -> list[Result]:
    """Bytes per call a traced cell saves, compact and full (``saved_output.py``)."""
    from . import saved_output

    sizes = saved_output.measure()
    results = []
    for (output, calls), per_call in sorted(sizes.items(), key=lambda kv: (kv[0][0] != "compact",
                                                                          kv[0][1])):
        target = output == "compact" and calls == 100
        results.append(Result(
            f"saved in the notebook per call, {calls}-call cell, output {output}",
            f"≤ {saved_output.TARGET_BYTES / 1000:g} KB" if target else "(reference)",
            [per_call / 1000], "KB",
            per_call <= saved_output.TARGET_BYTES if target else None))
    return results


def real_memory_case(n: int) -> list[Result]:
    """Memory per retained real call in a %%trace cell of n calls (``real_path.py``)."""
    from . import real_path

    kb = real_path.memory_per_call(n)["kb_per_call"]
    return [Result(f"memory per retained real call ({n:,} calls through the client in one "
                   "%%trace cell, content captured, view and frames built)",
                   f"≤ {real_path.TARGET_KB:g} KB", [kb], "KB", kb <= real_path.TARGET_KB)]


def _renumbered(records: list[Any], k: int) -> list[Any]:
    """The records as the spans of another session: the same content, other ids."""
    trace, span = k << 80, k << 40
    return [(r[0] ^ trace, r[1] ^ span, None if r[2] is None else r[2] ^ span, *r[3:])
            for r in records]


def store_cases(n: int, history_n: int, repeats: int) -> list[Result]:
    """The local store (``llmtrace_nb/_keep``): the background writer's throughput, a
    restore of ``n`` spans into a collector, ``history()`` over ``history_n`` — the first
    read (through the records; it keeps the columns it built) and the next ones."""
    from llmtrace_nb._keep.history import history_frame
    from llmtrace_nb._keep.restore import restore
    from llmtrace_nb._keep.store import Store
    from llmtrace_nb._keep.writer import StoreWriter

    written, restored, first, again, sizes, kept = [], [], [], [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            _, collector, _ = filled(n)
            store = Store(Path(tmp) / "spans.sqlite")
            session = store.begin_session(time.time_ns(), None, "bench.ipynb")
            writer = StoreWriter(collector, store, session, content=lambda: True,
                                 interval_s=3600)
            written.append(n / timed(writer.flush))
            sizes.append(store.size() / n)
            restored.append(timed(functools.partial(restore, SpanCollector(n * 2), store,
                                                    [session])))
            if history_n:
                records = collector.records_since(0)
                for k in range(1, history_n // n):  # more sessions: other spans, same shape
                    other = SpanCollector(n)
                    other.add_records(_renumbered(records, k), [])
                    more = store.begin_session(time.time_ns(), None, "bench.ipynb")
                    StoreWriter(other, store, more, content=lambda: True,
                                interval_s=3600).flush()
                    del other
                del records
                first.append(timed(functools.partial(history_frame, store, PriceBook())))
                again.append(timed(functools.partial(history_frame, store, PriceBook())))
                frames = store.frames(s.id for s in store.sessions()).values()
                kept.append(sum(len(data) for _, _, data in frames) / history_n)
            store.close()
            del collector
    results = [
        Result(f"store: background writer, {n:,} spans (scrub, encode, one transaction)",
               "≥ 50,000 spans/s", written, "spans/s", statistics.median(written) >= 50_000),
        Result("store: bytes on disk per span (synthetic LLM spans, zlib'd JSON chunks)",
               "(reference)", sizes, "bytes", None),
        Result(f"store: restore {n:,} spans into a collector", "≤ 1 s", restored, "s",
               statistics.median(restored) <= 1.0),
    ]
    if first:
        results.append(Result(
            f"store: history() over {history_n:,} stored spans, first read (from the "
            "chunks; keeps the columns it built)", "(reference)", first, "s", None))
        results.append(Result(f"store: history() over {history_n:,} stored spans",
                              "≤ 2 s", again, "s", statistics.median(again) <= 2.0))
        results.append(Result("store: bytes on disk per span of the columns history() "
                              "keeps (every trace id distinct: the worst case)",
                              "(reference)", kept, "bytes", None))
    return results


def real_per_call_cases(n: int, rounds: int) -> list[Result]:
    """µs each non-streamed call costs on the real path, ours beside Phoenix-batch; and
    the share streamed calls cost (``real_path.py``)."""
    import statistics as st

    from . import real_path

    phoenix = None
    try:
        sys.path.insert(0, str(HERE.parent / "tests"))  # the test suite's Phoenix venv
        from phoenix_server import phoenix_python  # builds it on first use

        phoenix = str(phoenix_python())
    except Exception as exc:  # no registry, no venv: ours is still measured
        print(f"Phoenix side by side skipped: {exc}", file=sys.stderr)
    runs = real_path.per_call(n, rounds, phoenix)
    added = [o - b for o, b in zip(runs["ours"], runs["bare"], strict=True)]
    results = [Result(f"bare call through the openai client to the demo server ({n} calls "
                      f"a run, {rounds} runs)", "(reference)", runs["bare"], "µs", None)]
    alone = [i - b for i, b in zip(runs["instrumentation"], runs["bare"], strict=True)]
    results.append(Result("added per call, run against bare run: "
                          "opentelemetry-instrumentation-openai as shipped, no processor",
                          "(reference)", alone, "µs", None))
    if phoenix:
        theirs = [p - b for p, b in zip(runs["phoenix"], runs["phoenix-bare"], strict=True)]
        results.append(Result("added per call, run against bare run: Phoenix "
                              "register(batch=True) + OpenInference", "(reference)", theirs,
                              "µs", None))
    results.append(Result("added per call, run against bare run: llmtrace_nb in a %%trace "
                          "cell", "(reference)", added, "µs", None))
    # the same, measured inside each run's process (per_call_client.paired): the figures
    # judged, as the drift between processes that the rows above carry cancels here
    results.append(Result("added per call, in one process (blocks with and without "
                          "tracing taking turns): bare, the noise floor", "(reference)",
                          runs["bare:paired"], "µs", None))
    results.append(Result("added per call, in one process: the OpenAI instrumentation as "
                          "shipped", "(reference)", runs["instrumentation:paired"], "µs",
                          None))
    beside = ""
    ours = st.median(runs["ours:paired"])
    met = ours <= real_path.PER_CALL_TARGET_US
    if phoenix:
        phoenix_paired = runs["phoenix:paired"]
        results.append(Result("added per call, in one process: Phoenix register(batch=True) "
                              "+ OpenInference", "(reference)", phoenix_paired, "µs", None))
        beside = f" and below Phoenix's {st.median(phoenix_paired):.0f} µs"
        met = met and ours < st.median(phoenix_paired)
    results.append(Result("added per call, in one process: llmtrace_nb in a %%trace cell",
                          f"≤ {real_path.PER_CALL_TARGET_US:g} µs{beside}",
                          runs["ours:paired"], "µs", met))
    share = [o / b - 1 for o, b in zip(runs["ours:stream"], runs["bare:stream"], strict=True)]
    results.append(Result("added per streamed call, run against bare run, share of a bare "
                          "streamed call", "(reference)", [100 * s for s in share], "%", None))
    paired_share = [a / b for a, b in zip(runs["ours:stream:paired"], runs["bare:stream"],
                                          strict=True)]
    results.append(Result("added per streamed call, in one process, share of a bare "
                          "streamed call", f"≤ {real_path.STREAM_TARGET:.0%}",
                          [100 * s for s in paired_share], "%",
                          st.median(paired_share) <= real_path.STREAM_TARGET))
    return results


CASES: dict[str, Callable[[], list[Result]]] = {
    "per-span": lambda: per_span_overhead(100_000, 7, run=_isolated_variant_run),
    "frames": lambda: frames_cases([10_000, 100_000], 5) + aged_frames_case(100_000, 5),
    "frames-1m": lambda: frames_cases([1_000_000], 1),
    "analysis": lambda: analysis_cases(100_000, 5),
    "content": lambda: content_case(100_000, 3),
    "trace-view": lambda: trace_view_cases([100, 1_000, 10_000], 5),
    "memory": lambda: memory_per_span(100_000),
    "forwarding": lambda: forwarding_cases(9, 10_000),
    "live": lambda: live_line_case(30_000, 7),
    "scrub": lambda: scrub_cases(),
    "phoenix": lambda: phoenix_cases(5_000, 3),
    "saved-output": saved_output_cases,
    "real-memory": lambda: real_memory_case(5_000),
    "real-per-call": lambda: real_per_call_cases(300, 5),
    "store": lambda: store_cases(100_000, 1_000_000, 3),
}


def quick() -> list[Result]:
    """Every case once on small sizes, in this process (what `make test` runs)."""
    return (per_span_overhead(2_000, 1) + frames_cases([2_000], 1)
            + aged_frames_case(2_000, 1) + analysis_cases(2_000, 1) + content_case(500, 1)
            + trace_view_cases([100], 1) + memory_per_span(2_000)
            + forwarding_cases(1, 500) + live_line_case(2_000, 1) + scrub_cases(20_000)
            + store_cases(2_000, 0, 1))


def run_isolated(name: str) -> list[Result]:
    """One case group in a fresh interpreter.

    A case that keeps and frees 100k spans leaves the heap fragmented for the next one
    (the "aged" rows show by how much), so, as pyperf does, no case inherits another's
    heap. Ratios stay side by side inside their own case.
    """
    return [Result(**r) for r in _in_fresh_interpreter("--case", name)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-phoenix", action="store_true",
                        help="skip the side by side with Arize Phoenix (about five minutes; "
                        "builds Phoenix's own venv on first use)")
    parser.add_argument("--case", choices=list(CASES),
                        help="run one case group in this process and write its results")
    parser.add_argument("--case-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant-run", choices=list(_variants(1)), help=argparse.SUPPRESS)
    parser.add_argument("--spans", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument("--block", type=int, default=1_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant_run:  # one run of one per-span variant, for per_span_overhead
        args.case_out.write_text(
            json.dumps(variant_run(args.variant_run, args.spans, args.block)),
            encoding="utf-8")
        return 0
    if args.case:
        results = CASES[args.case]()
        if args.case_out:
            args.case_out.write_text(json.dumps([vars(r) for r in results]),
                                     encoding="utf-8")
    elif args.quick:
        results = quick()
    else:
        results = []
        for name in CASES:
            if name == "phoenix" and args.no_phoenix:
                continue
            print(f"… {name}", file=sys.stderr, flush=True)
            results += run_isolated(name)
    header = ["| case | target | median (min–max) | |", "|---|---|---|---|"]
    table = "\n".join(header + [r.row() for r in results])
    print(table)
    if not args.quick and not args.case:
        args.out.write_text(
            f"# Benchmark results\n\nMachine: {machine()}\n\n"
            f"Measured {time.strftime('%Y-%m-%d')} with `make bench`; each case group "
            f"in a fresh interpreter.\n\n{table}\n",
            encoding="utf-8")
        raw = args.out.parent / "results.json"  # every run's figure, for a closer look
        raw.write_text(json.dumps([vars(r) for r in results], indent=1), encoding="utf-8")
        print(f"\nwritten to {args.out} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
