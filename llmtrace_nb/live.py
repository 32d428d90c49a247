"""The live line of a running ``%%trace`` cell: LLM calls · tokens · cost · elapsed.

A daemon thread looks at the collector a few times a second and, when spans of the cell
have ended since the last look, updates the cell's display in place. It reads only the
spans appended since its last look and keeps running sums, so a long cell in a full
buffer costs the same per tick as a short one. When the cell ends, ``stop()`` joins the
thread and the caller replaces the line with the trace view (same display id).
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

from opentelemetry.trace import StatusCode

from . import record as rec
from .collector import CellRef
from .pricing import PriceBook
from .record import Record
from .totals import CallTotals
from .views.text import format_cost, format_duration, plural

TICK_SECONDS = 0.25


class RunningTotals:
    """Sums over the LLM calls of one cell, fed with collector records as they arrive.

    A call traced by a framework and by the client is counted once (totals.py).
    """

    def __init__(self, ref: CellRef, prices: PriceBook) -> None:
        self.ref = ref
        self._totals = CallTotals(prices)
        self.errors = 0

    @property
    def calls(self) -> int:
        return self._totals.calls

    @property
    def tokens(self) -> int:
        return self._totals.tokens

    @property
    def cost(self) -> float:
        return self._totals.cost

    @property
    def unpriced(self) -> int:
        return self._totals.unpriced

    def add(self, record: Record) -> None:
        """Count one collected span (a record) if it belongs to this cell."""
        if record[rec.CELL] != self.ref.seq and record[rec.TRACE_ID] != self.ref.trace_id:
            return
        if record[rec.STATUS] == StatusCode.ERROR.value:
            self.errors += 1
        # the cell is the place: a cell traced in auto mode has no root span to tie its
        # traces together
        self._totals.add(record[rec.SPAN_ID], record[rec.PARENT_ID], self.ref.seq,
                         getattr(record[rec.SCOPE], "name", None), record[rec.ATTRS],
                         record[rec.START], record[rec.END])

    def line(self, name: str, elapsed_s: float) -> str:
        parts = [f"⏳ {name}", plural(self.calls, "LLM call"), f"{self.tokens:,} tokens"]
        if self.calls:
            parts.append(format_cost(self.cost) if self.cost or not self.unpriced
                         else "no price")
        if self.errors:
            parts.append(plural(self.errors, "error"))
        parts.append(format_duration(elapsed_s * 1000))
        return " · ".join(parts)


class LiveLine:
    """Shows and refreshes the running totals of one cell under a display id."""

    def __init__(self, collector: Any, ref: CellRef, prices: PriceBook) -> None:
        from IPython.display import display

        self.collector = collector
        self.totals = RunningTotals(ref, prices)
        self.ref = ref
        self.started = time.perf_counter()
        self._seen = collector.appended
        self._stop = threading.Event()
        self.handle = display(self._bundle(), raw=True, display_id=True)
        self._thread = threading.Thread(target=self._run, name="llmtrace-live", daemon=True)
        self._thread.start()

    def _bundle(self) -> dict[str, str]:
        line = self.totals.line(self.ref.name, time.perf_counter() - self.started)
        return {"text/plain": line,
                "text/html": f'<pre class="llmtrace-live">{html.escape(line)}</pre>'}

    def _poll(self) -> bool:
        """Feed the spans that ended since the last look; True if there were any."""
        appended = self.collector.appended
        if appended == self._seen:
            return False
        for record in self.collector.records_since(self._seen):
            self.totals.add(record)
        self._seen = appended
        return True

    def _run(self) -> None:
        # The thread must never raise into the notebook: a failed refresh only means a
        # stale live line until the final view replaces it.
        last = time.perf_counter()
        while not self._stop.wait(TICK_SECONDS):
            try:
                # refresh when spans ended, and once a second for the elapsed time
                if self._poll() or time.perf_counter() - last >= 1.0:
                    self.handle.update(self._bundle(), raw=True)
                    last = time.perf_counter()
            except Exception:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def replace(self, bundle: dict[str, Any]) -> None:
        """The cell ended: its trace view takes the live line's place."""
        self.stop()
        self.handle.update(bundle, raw=True)
