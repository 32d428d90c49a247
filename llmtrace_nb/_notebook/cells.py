"""A traced cell's life: its root span, the active-cell stamp, totals and budgets.

IPython-free, so the same lifecycle serves ``%%trace``, auto mode and tests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from .._capture import keys
from .._capture.collector import CellRef
from .._read.scrub import scrub_text
from .._shape import document
from .session import Session


class BudgetExceeded(Exception):
    r"""A ``%%trace --max-cost`` / ``--max-latency`` budget was exceeded by the cell.

    Not raised into the cell's code: once the cell has run and its summary is shown, it
    becomes the cell's error (its traceback printed, ``ExecutionResult.error_in_exec``),
    so a notebook run in CI (nbclient, nbconvert, papermill) stops there.

    Parameters
    ----------
    message : str
        What was over which limit, e.g. ``"budget exceeded: cost $0.012 > --max-cost
        $0.01"``.
    cost_usd : float, optional
        The cell's cost in USD (``None`` when no call had a price); kept as
        :attr:`cost_usd`.
    latency_s : float, optional
        The cell's wall time in seconds; kept as :attr:`latency_s`.

    Examples
    --------
    >>> result = get_ipython().run_cell("%%trace --max-cost 0.01\n" + code)  # doctest: +SKIP
    >>> isinstance(result.error_in_exec, llmtrace_nb.BudgetExceeded)  # doctest: +SKIP
    True
    >>> result.error_in_exec.cost_usd  # doctest: +SKIP
    0.0123
    """

    def __init__(self, message: str, *, cost_usd: float | None = None,
                 latency_s: float | None = None) -> None:
        super().__init__(message)
        self.cost_usd = cost_usd
        self.latency_s = latency_s


@dataclass
class Budget:
    max_cost: float | None = None
    max_latency: float | None = None


@dataclass
class ActiveCell:
    """A cell that is running: its ref, its root span (None in auto mode) and context."""

    ref: CellRef
    span: trace.Span | None
    token: otel_context.Token[otel_context.Context] | None
    previous: CellRef | None
    budget: Budget
    quiet: bool
    auto: bool
    started: float
    #: the live line shown while the cell runs (a kernel only), replaced by the view
    live: Any = None


def start_cell(session: Session, number: int | None, name: str | None = None,
               tags: dict[str, str] | None = None, *, budget: Budget | None = None,
               quiet: bool = False, auto: bool = False) -> ActiveCell:
    """Make this cell the one new spans belong to; open its root span unless in auto mode."""
    # The name becomes the root span's name and an attribute, so it reaches files and
    # backends: `%%trace debug sk-…` must not.
    ref = CellRef(number=number, name=scrub_text(name) if name else default_name(number),
                  tags={k: scrub_text(v) for k, v in (tags or {}).items()})
    span = token = None
    # Set before the root span starts, so the collector stamps the root with its own cell.
    previous = session.collector.active_cell
    session.collector.active_cell = ref
    if not auto:
        attributes: dict[str, str | int] = {keys.KIND: "cell", keys.CELL_NAME: ref.name}
        if number is not None:
            attributes[keys.CELL_NUMBER] = number
        for key, value in ref.tags.items():
            attributes[keys.TAG_PREFIX + key] = value
        span = session.tracer.start_span(ref.name, attributes=attributes)
        ctx = span.get_span_context()
        ref.trace_id, ref.root_span_id = ctx.trace_id, ctx.span_id
        token = otel_context.attach(trace.set_span_in_context(span))
    ref.start_ns = time.time_ns()
    session.collector.register_cell(ref)
    return ActiveCell(ref=ref, span=span, token=token, previous=previous,
                      budget=budget or Budget(), quiet=quiet, auto=auto,
                      started=time.perf_counter())


def end_cell(session: Session, cell: ActiveCell, error: BaseException | None = None) -> None:
    """Close the root span (error status if the cell raised) and restore the outer cell."""
    if cell.span is not None:
        if error is not None:
            cell.span.record_exception(error, escaped=True)
            cell.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        cell.span.end()
        if cell.token is not None and trace.get_current_span() is cell.span:
            otel_context.detach(cell.token)
        # Otherwise the context the root was attached in belonged to the asyncio task
        # ipykernel ran the cell in; that context is gone with the task.
    cell.ref.end_ns = time.time_ns()
    session.collector.active_cell = cell.previous


def renumber(cell: ActiveCell, number: int) -> None:
    """Give a running cell its final execution count (and its default name with it)."""
    ref = cell.ref
    if ref.number == number:
        return
    if ref.name == default_name(ref.number):
        ref.name = default_name(number)
        if cell.span is not None:
            cell.span.update_name(ref.name)
            cell.span.set_attribute(keys.CELL_NAME, ref.name)
    ref.number = number
    if cell.span is not None:
        cell.span.set_attribute(keys.CELL_NUMBER, number)


def default_name(number: int | None) -> str:
    return f"cell [{number}]" if number is not None else "cell"


def cell_spans(session: Session, ref: CellRef) -> pd.DataFrame:
    """The spans_df() rows of one cell run."""
    # the cell's rows picked first: only theirs have their messages read again
    return session.frames.spans(capture_content=session.capture_content, keep_private=True,
                                where=lambda df: df["_cell_seq"] == ref.seq)


def cell_document(session: Session, ref: CellRef) -> dict[str, Any]:
    """The trace document of one cell run, as every view shows it."""
    return document.build(
        cell_spans(session, ref), name=ref.name, cell=ref.number, start_ns=ref.start_ns,
        end_ns=ref.end_ns, open_spans=session.collector.running_in(ref),
        evicted=session.frames.evicted().get(ref.seq), output=session.output,
    )


def check_budget(budget: Budget, totals: Mapping[str, Any]) -> BudgetExceeded | None:
    """A breach of the cell's budget, judged on its trace document's totals."""
    over = []
    cost = totals.get("cost_usd")
    if budget.max_cost is not None and cost is not None and cost > budget.max_cost:
        over.append(f"cost ${cost:.6g} > --max-cost ${budget.max_cost:g}")
    latency_s = (totals.get("duration_ms") or 0.0) / 1000.0
    if budget.max_latency is not None and latency_s > budget.max_latency:
        over.append(f"latency {latency_s:.3g} s > --max-latency {budget.max_latency:g} s")
    if not over:
        return None
    return BudgetExceeded("budget exceeded: " + "; ".join(over),
                          cost_usd=cost, latency_s=latency_s)
