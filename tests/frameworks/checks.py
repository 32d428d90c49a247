"""The invariants every framework test checks, against what the demo server answered.

A framework test runs a notebook in a real kernel (``kernel.Kernel``): set-up cells, then
``%%trace NAME`` cells, each making some LLM calls. :class:`Notebook` keeps, per traced
cell, the requests the demo server answered while it ran (``DemoServer.answered``), and
:func:`check_calls` compares them with what llmtrace_nb reports:

- the counted LLM rows of a cell (``llm_calls_df()``, duplicates left out) are its HTTP
  calls, one each: model (the dated name the server answered with), input, output, cache
  read and cache write tokens, streamed or not, and a cost equal to ``genai_prices.calc_price``
  of the server's usage;
- a streamed call has ``is_streaming`` and a time to first token, a call that was not
  streamed has neither;
- each counted row has its messages (content capture is on in these notebooks);
- ``cells_df()`` and ``summary()`` have the same totals;
- ``spans_df()`` still holds every span: each span the SDK ended after the set-up on the
  global provider or logfire's (a harness exporter records them), duplicates included,
  each duplicate naming a counted row of its cell;
- nothing tried to reach beyond loopback, and every model is priced.

The test modules add what their framework marks: the kinds of its spans (agent, tool,
chain, llm: :func:`check_kind`) and a tool row's call (:func:`tool_calls_of`).

Checks are collected (:class:`Checks`) and reported together, so one run names every
broken invariant of a notebook, not only the first.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genai_prices import Usage, calc_price

from llmtrace_nb.demo import DemoServer

from .kernel import Kernel

#: where ``%load_ext llmtrace_nb`` goes: before the framework's set-up, or after it
LOAD_ORDERS = ("load_ext_first", "load_ext_last")
LOAD_EXT = "%load_ext llmtrace_nb"

#: genai-prices provider of each demo endpoint
PROVIDER_OF_ENDPOINT = {"chat": "openai", "responses": "openai", "embeddings": "openai",
                        "messages": "anthropic"}
#: relative tolerance of cost comparisons (sums of floats)
REL = 1e-9

# After the set-up cells: every span the SDK ends is also exported to memory, so the report
# can tell whether spans_df() holds all of them. Exported from the global provider and from
# logfire's own (logfire sets a proxy as the global provider when it is the first to set
# one, and keeps a provider of its own when another was there first).
EXPORTER_CELL = """\
import sys as _harness_sys2
from opentelemetry import trace as _harness_trace
from opentelemetry.sdk.trace import TracerProvider as _HarnessSDKProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor as _HarnessSimple
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter as _HarnessMemory)
_harness_exported = _HarnessMemory()
_harness_providers = [_harness_trace.get_tracer_provider()]
if "logfire" in _harness_sys2.modules:
    import logfire as _harness_logfire
    _harness_providers.append(
        _harness_logfire.DEFAULT_LOGFIRE_INSTANCE.config.get_tracer_provider())
_harness_exporting = []
for _harness_p in _harness_providers:
    _harness_p = getattr(_harness_p, "provider", _harness_p)  # logfire's proxy
    if isinstance(_harness_p, _HarnessSDKProvider) and not any(
            _harness_p is q for q in _harness_exporting):
        _harness_p.add_span_processor(_HarnessSimple(_harness_exported))
        _harness_exporting.append(_harness_p)
"""

EXPORTED_MARKER = "@@EXPORTED@@"
EXPORTED_CELL = """\
import json as _harness_json2
print(MARKER + _harness_json2.dumps({
    "exporting": len(_harness_exporting),
    "provider": type(_harness_trace.get_tracer_provider()).__module__ + "."
                + type(_harness_trace.get_tracer_provider()).__name__,
    "spans": [{"span_id": format(s.context.span_id, "016x"), "name": s.name,
               "scope": s.instrumentation_scope.name if s.instrumentation_scope else None}
              for s in _harness_exported.get_finished_spans()]}))
""".replace("MARKER", repr(EXPORTED_MARKER))


def call_cost(call: dict[str, Any]) -> float:
    """What genai-prices charges for one answered request (cache reads and writes
    included; input tokens include the cached ones, as in genai-prices' Usage)."""
    usage = Usage(input_tokens=call["input_tokens"],
                  cache_read_tokens=call["cache_read_tokens"],
                  cache_write_tokens=call["cache_write_tokens"],
                  output_tokens=call["output_tokens"])
    return float(calc_price(usage, model_ref=call["model"],
                            provider_id=PROVIDER_OF_ENDPOINT[call["endpoint"]]).total_price)


def expected_totals(answered: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Calls, tokens and cost of the requests the demo server answered."""
    calls = list(answered)
    return {
        "calls": len(calls),
        "input_tokens": sum(c["input_tokens"] for c in calls),
        "output_tokens": sum(c["output_tokens"] for c in calls),
        "cache_read_tokens": sum(c["cache_read_tokens"] for c in calls),
        "cache_write_tokens": sum(c["cache_write_tokens"] for c in calls),
        "cost_usd": sum(call_cost(c) for c in calls),
    }


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=REL, abs_tol=1e-15)


@dataclass
class Checks:
    """Collected checks; :meth:`done` fails with all that did not hold."""

    title: str
    failures: list[str] = field(default_factory=list)
    passed: int = 0
    #: shown after the failures (``%llmtrace status`` of the kernel)
    context: str = ""

    def that(self, ok: bool, label: str, observed: Any = None, expected: Any = None) -> bool:
        if ok:
            self.passed += 1
        else:
            detail = "" if observed is None and expected is None else (
                f"\n      observed: {observed!r}\n      expected: {expected!r}")
            self.failures.append(f"{label}{detail}")
        return ok

    def equal(self, label: str, observed: Any, expected: Any) -> bool:
        return self.that(observed == expected, label, observed, expected)

    def near(self, label: str, observed: Any, expected: Any) -> bool:
        return self.that(close(observed, expected), label, observed, expected)

    def done(self) -> None:
        if self.failures:
            lines = "\n".join(f"  - {f}" for f in self.failures)
            raise AssertionError(f"{self.title}: {len(self.failures)} of "
                                 f"{len(self.failures) + self.passed} checks failed:\n{lines}"
                                 + (f"\n{self.context}" if self.context else ""))


class Notebook:
    """A notebook run in a kernel against the demo server, cell by cell.

    :meth:`setup` cells must make no LLM call; :meth:`traced` cells run under
    ``%%trace NAME`` and keep the requests the server answered while they ran.
    """

    def __init__(self, kernel: Kernel, server: DemoServer) -> None:
        self.kernel = kernel
        self.server = server
        # cells name the demo server as a user would: its URL, written into the cell
        self.subs = {"$BASE_URL": server.base_url,
                     "$ANTHROPIC_BASE_URL": server.anthropic_base_url}
        #: the requests answered while each traced cell ran, by cell name
        self.answered: dict[str, list[dict[str, Any]]] = {}
        self.exporting = False

    def _source(self, source: str) -> str:
        for key, value in self.subs.items():
            source = source.replace(key, value)
        return source

    def setup(self, source: str) -> str:
        """Run a cell that makes no LLM call; returns what it printed."""
        self.server.clear_answered()
        out = self.kernel.run(self._source(source))
        assert self.server.answered == [], f"a set-up cell made LLM calls:\n{source}"
        return out

    def set_up(self, order: str, *cells: str) -> None:
        """The framework's set-up cells, with ``%load_ext llmtrace_nb`` before or after
        them; then every span is recorded for the comparison with spans_df()."""
        assert order in LOAD_ORDERS, order
        first = order == LOAD_ORDERS[0]
        for source in ([LOAD_EXT, *cells] if first else [*cells, LOAD_EXT]):
            self.setup(source)
        self.start_exporting()

    def start_exporting(self) -> None:
        """After the set-up: record every span the SDK ends, to compare with spans_df()."""
        self.kernel.run(EXPORTER_CELL, store_history=False)
        self.exporting = True

    def traced(self, name: str, body: str, timeout: float = 120) -> str:
        """Run ``body`` under ``%%trace name``; returns what it printed."""
        self.server.clear_answered()
        out = self.kernel.run(f"%%trace {name}\n" + self._source(textwrap.dedent(body)),
                              timeout=timeout)
        self.answered[name] = self.server.answered
        self.server.clear_answered()
        return out

    def report(self) -> dict[str, Any]:
        """The kernel's report, with the spans the harness exporter recorded."""
        report = self.kernel.report()
        if self.exporting:
            printed = self.kernel.run(EXPORTED_CELL, store_history=False)
            line = next(ln for ln in printed.splitlines() if ln.startswith(EXPORTED_MARKER))
            report["exported"] = json.loads(line[len(EXPORTED_MARKER):])
        return report


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    zero = lambda v: 0 if v is None else v  # noqa: E731 - an absent cache count is none
    # an embeddings response has no output count (the server logs 0)
    output = zero(row["output_tokens"]) if row["kind"] == "embedding" else row["output_tokens"]
    return (row["model"], row["input_tokens"], output,
            zero(row["cache_read_tokens"]), zero(row["cache_write_tokens"]),
            bool(row["is_streaming"]),
            None if row["cost_usd"] is None else round(float(row["cost_usd"]), 12))


def _call_key(call: dict[str, Any]) -> tuple[Any, ...]:
    return (call["model"], call["input_tokens"], call["output_tokens"],
            call["cache_read_tokens"], call["cache_write_tokens"], call["stream"],
            round(call_cost(call), 12))


KEY_FIELDS = "(model, input, output, cache_read, cache_write, is_streaming, cost_usd)"


def _describe(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [f"{r['name']} [{r.get('scope')}] model={r['model']} in={r['input_tokens']} "
            f"out={r['output_tokens']} cr={r['cache_read_tokens']} "
            f"cw={r['cache_write_tokens']} stream={r['is_streaming']} ttft={r['ttft_ms']} "
            f"cost={r['cost_usd']} dup={r['duplicate_of']}" for r in rows]


def check_calls(report: dict[str, Any], answered: Mapping[str, list[dict[str, Any]]],
                checks: Checks, without_output_messages: Collection[str] = (),
                without_messages: bool = False) -> None:
    """The invariants of the module docstring, cell by cell and in total, for the requests
    ``answered`` while each traced cell ran (``Notebook.answered``).

    ``without_output_messages``: cells whose calls no instrumentation records the output
    of (the framework's own behaviour, said where the test passes it); ``without_messages``:
    no call records any (said where the test passes it).
    """
    checks.context = report["status"]
    llm = report["llm_calls"]
    spans = report["spans"]
    by_id = {s["span_id"]: s for s in spans}
    for s in llm:  # the scope is only in the spans rows
        s["scope"] = by_id.get(s["span_id"], {}).get("scope")
    cells = {c["cell_name"]: c for c in report["cells"]}
    all_calls: list[dict[str, Any]] = []
    for name, calls in answered.items():
        all_calls += calls
        rows = [r for r in llm if r["cell_name"] == name]
        genai = [s for s in spans if s["cell_name"] == name and s["kind"] in ("llm",
                                                                             "embedding")]
        where = f"[{name}]"
        checks.that(bool(calls), f"{where} the cell made LLM calls (the demo server answered)")
        checks.equal(f"{where} counted LLM rows = HTTP calls answered "
                     f"(GenAI spans of the cell: {_describe(genai)})", len(rows), len(calls))
        checks.equal(f"{where} one counted row per call, {KEY_FIELDS}",
                     sorted(map(_row_key, rows), key=repr),
                     sorted(map(_call_key, calls), key=repr))
        exp = expected_totals(calls)
        for column in ("input_tokens", "output_tokens", "cache_read_tokens",
                       "cache_write_tokens"):
            checks.equal(f"{where} sum of {column} of the counted rows",
                         sum(r[column] or 0 for r in rows), exp[column])
        checks.near(f"{where} cost of the counted rows = calc_price of the server's usage",
                    sum(r["cost_usd"] or 0.0 for r in rows), exp["cost_usd"])
        checks.that(all(r["cost_usd"] is not None for r in rows),
                    f"{where} every counted row is priced", _describe(rows), None)
        streamed = [c for c in calls if c["stream"]]
        checks.equal(f"{where} counted rows with is_streaming",
                     sum(bool(r["is_streaming"]) for r in rows), len(streamed))
        checks.equal(f"{where} counted rows with a time to first token (ttft_ms)",
                     sum(r["ttft_ms"] is not None for r in rows), len(streamed))
        checks.that(all(r["ttft_ms"] is None or r["is_streaming"] for r in rows),
                    f"{where} TTFT only on streamed rows", _describe(rows), None)
        checks.that(without_messages or all(r["has_input_messages"] and (
                                                     r["has_output_messages"]
                                                     or r["kind"] == "embedding"
                                                     or name in without_output_messages)
                        for r in rows),
                    f"{where} every counted row has its messages (input; output but for "
                    "embeddings)",
                    [(r["name"], r["has_input_messages"], r["has_output_messages"])
                     for r in rows], None)
        cell = cells.get(name)
        if checks.that(cell is not None, f"{where} cells_df() has a row for the cell"):
            assert cell is not None
            checks.equal(f"{where} cells_df llm_calls", cell["llm_calls"], len(calls))
            checks.equal(f"{where} cells_df input_tokens", cell["input_tokens"],
                         exp["input_tokens"] if calls else None)
            # embeddings alone have no output count: the cell's sum is null then
            chat_like = [c for c in calls if c["endpoint"] != "embeddings"]
            checks.equal(f"{where} cells_df output_tokens", cell["output_tokens"],
                         exp["output_tokens"] if chat_like else None)
            checks.near(f"{where} cells_df cost_usd", cell["cost_usd"],
                        exp["cost_usd"] if calls else None)
        counted_ids = {r["span_id"] for r in rows}
        dups = [s for s in genai if s["duplicate_of"] is not None]
        checks.that(all(s["duplicate_of"] in counted_ids for s in dups),
                    f"{where} every duplicate names a counted row of its cell",
                    [(s["name"], s["duplicate_of"]) for s in dups], sorted(counted_ids))
    exp = expected_totals(all_calls)
    checks.equal("[all] llm_calls_df() rows = HTTP calls answered", len(llm), exp["calls"])
    checks.equal("[all] no LLM row outside the traced cells",
                 [r["name"] for r in llm if r["cell_name"] not in answered], [])
    summary = report["summary"]
    checks.equal("[all] summary() calls", sum(r["calls"] for r in summary), exp["calls"])
    checks.equal("[all] summary() input_tokens",
                 sum(r["input_tokens"] or 0 for r in summary), exp["input_tokens"])
    checks.equal("[all] summary() output_tokens",
                 sum(r["output_tokens"] or 0 for r in summary), exp["output_tokens"])
    checks.near("[all] summary() cost_usd", sum(r["cost_usd"] or 0.0 for r in summary),
                exp["cost_usd"])
    checks.equal("[all] summary() models", sorted(r["model"] for r in summary),
                 sorted({c["model"] for c in all_calls}))
    checks.equal("[all] models without a price", report["unpriced_models"], [])
    checks.equal("[all] network attempts beyond loopback", report["blocked"], [])
    checks.equal("[all] spans dropped", report["dropped_spans"], 0)
    exported = report.get("exported")
    if exported is not None:
        checks.that(exported["exporting"] > 0, "[all] the harness found an SDK provider to "
                    "export from", exported["provider"], None)
        ids = {s["span_id"] for s in spans}
        missing = [f"{s['name']} [{s['scope']}]" for s in exported["spans"]
                   if s["span_id"] not in ids]
        checks.equal("[all] spans_df() holds every span the SDK ended", missing, [])


def spans_named(report: dict[str, Any], cell: str, name: str) -> list[dict[str, Any]]:
    return [s for s in report["spans"] if s["cell_name"] == cell and s["name"] == name]


def check_kind(checks: Checks, report: dict[str, Any], cell: str, name: str, kind: str,
               count: int | None = None) -> None:
    """The spans named ``name`` in ``cell`` (``count`` of them, or at least one) are of
    ``kind``."""
    found = spans_named(report, cell, name)
    kinds = Counter(s["kind"] for s in found)
    expected = Counter({kind: count if count is not None else max(len(found), 1)})
    checks.equal(f"[{cell}] kind of the spans named {name!r} (scope "
                 f"{sorted({str(s['scope']) for s in found})})", dict(kinds), dict(expected))


def tool_calls_of(report: dict[str, Any], cell: str, name: str) -> list[Any]:
    """The ``tool_calls`` of the input messages of the tool rows named ``name``."""
    return [call for row in report["tools"] if row["cell_name"] == cell
            and row["name"] == name
            for message in (row["input_messages"] or [])
            for call in (message.get("tool_calls") or [])]
