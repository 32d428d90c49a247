"""Running totals over spans that arrive one by one, each call counted once.

The DataFrames and the trace document count calls from finished frames; two paths see
spans one at a time instead and must reach the same numbers: the live line of a running
cell and the forwarding rule ``--only cost:USD``. Both feed spans here. Spans of one call
(calls.py) are one unit, whose tokens and cost are those of the call's merged fields;
when a later span joins a call, the call's old contribution is taken back and the new one
added, so the sums stay right without ever looking at the spans again.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from .._read import calls, semconv
from .pricing import PriceBook, fields_cost

_KEPT = ("provider", "request_model", "response_model", "input_tokens", "output_tokens",
         "total_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
         "is_streaming")


@dataclass
class _Unit:
    tokens: int = 0
    cost: float | None = None
    unpriced: bool = False


class CallTotals:
    """LLM calls, tokens and cost of the spans added so far. One owner (not thread-safe)."""

    def __init__(self, prices: PriceBook) -> None:
        self.prices = prices
        self.calls = 0
        self.tokens = 0
        self.cost = 0.0
        #: calls that reported usage but have no price
        self.unpriced = 0
        self._matcher = calls.SameCalls()
        self._rows: dict[Hashable, dict[str, Any]] = {}
        self._units: dict[Hashable, _Unit] = {}
        self._unit_of: dict[Hashable, Hashable] = {}

    def add(self, span_id: Hashable, parent_id: Hashable | None, place: Hashable,
            scope: str | None, attributes: Mapping[str, Any], start: int | None,
            end: int | None) -> None:
        """Count one finished span; ``place`` is its cell or trace (calls.py)."""
        fields = semconv.scalar_fields(attributes)
        if semconv.span_kind(attributes, fields) not in semconv.PRICED_KINDS:
            self._matcher.add([], [(span_id, parent_id, place)])
            return
        model = fields["response_model"] or fields["request_model"]
        # what merging and pricing read; kept while the totals live (a running cell)
        self._rows[span_id] = {**{k: fields[k] for k in _KEPT}, "model": model,
                               "given_cost": fields["cost_usd"]}
        call = calls.CallSpan(
            key=span_id, span_id=span_id, parent_id=parent_id, place=place,
            scope=scope, response_id=fields["response_id"], family=calls.model_family(model),
            input_tokens=fields["input_tokens"], output_tokens=fields["output_tokens"],
            start=start, end=end)
        changed = self._matcher.add([call])
        if call.group is not None and call.group in changed:
            group = call.group
            row = calls.merged(self._rows[group.counted.key],
                               [self._rows[m.key] for m in group.innermost_first()])
            self._count(id(group), [m.key for m in group.members], row)
        else:
            self._count(span_id, [span_id], self._rows[span_id])

    def _count(self, unit_id: Hashable, members: list[Hashable], row: Mapping[str, Any]
               ) -> None:
        for old in {self._unit_of[m] for m in members if m in self._unit_of}:
            self._take_back(self._units.pop(old))
        tokens = (row.get("input_tokens") or 0) + (row.get("output_tokens") or 0)
        cost = fields_cost(row, self.prices)
        unit = _Unit(tokens, cost, cost is None and tokens > 0)
        self._units[unit_id] = unit
        for m in members:
            self._unit_of[m] = unit_id
        self.calls += 1
        self.tokens += unit.tokens
        self.cost += unit.cost or 0.0
        self.unpriced += unit.unpriced

    def _take_back(self, unit: _Unit) -> None:
        self.calls -= 1
        self.tokens -= unit.tokens
        self.cost -= unit.cost or 0.0
        self.unpriced -= unit.unpriced
