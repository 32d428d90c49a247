"""The live line of a running ``%%trace`` cell: LLM calls · tokens · cost · elapsed.

A daemon thread looks at the collector a few times a second and, when spans have ended
since the last look, counts the cell again from the frame builder (``cell_totals``): it
converts only the new spans, which the cell's view needs at its end anyway, so the live
line adds little to a span-heavy cell, and it counts exactly as the view will (each call
once, evicted spans included). When the cell ends, ``stop()`` joins the thread and the
caller replaces the line with the trace view (same display id).
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Mapping
from typing import Any

from .._capture.collector import CellRef
from .._shape.frames import FrameBuilder
from .text import format_cost, format_duration, plural

TICK_SECONDS = 0.25
#: the share of the time the live line may take from a running cell
MAX_SHARE = 0.1


def live_text(name: str, totals: Mapping[str, float], elapsed_s: float) -> str:
    """``⏳ name · 3 LLM calls · 1,234 tokens · $0.0012 · 2.30 s`` from ``cell_totals``."""
    calls = int(totals.get("llm_calls", 0))
    parts = [f"⏳ {name}", plural(calls, "LLM call"), f"{int(totals.get('tokens', 0)):,} tokens"]
    if calls:
        cost, unpriced = totals.get("cost_usd", 0.0), totals.get("unpriced_calls", 0)
        parts.append(format_cost(cost) if cost or not unpriced else "no price")
    if totals.get("errors"):
        parts.append(plural(int(totals["errors"]), "error"))
    parts.append(format_duration(elapsed_s * 1000))
    return " · ".join(parts)


class LiveLine:
    """Shows and refreshes the running totals of one cell under a display id."""

    def __init__(self, collector: Any, frames: FrameBuilder, ref: CellRef) -> None:
        from IPython.display import display

        self.collector = collector
        self.frames = frames
        self.totals: Mapping[str, float] = {}
        self.ref = ref
        self.started = time.perf_counter()
        self._seen = collector.appended
        self._stop = threading.Event()
        self.handle = display(self._bundle(), raw=True, display_id=True)
        self._thread = threading.Thread(target=self._run, name="llmtrace-live", daemon=True)
        self._thread.start()

    def _bundle(self) -> dict[str, str]:
        line = live_text(self.ref.name, self.totals, time.perf_counter() - self.started)
        return {"text/plain": line,
                "text/html": f'<pre class="llmtrace-live">{html.escape(line)}</pre>'}

    def _poll(self) -> bool:
        """Count the cell again if spans ended since the last look; True if any did."""
        appended = self.collector.appended
        if appended == self._seen:
            return False
        self._seen = appended
        self.totals = self.frames.cell_totals(self.ref.seq)
        return True

    def _run(self) -> None:
        # The thread must never raise into the notebook: a failed refresh only means a
        # stale live line until the final view replaces it.
        last = time.perf_counter()
        wait = TICK_SECONDS
        while not self._stop.wait(wait):
            try:
                # refresh when spans ended, and once a second for the elapsed time
                began = time.perf_counter()
                if self._poll() or began - last >= 1.0:
                    self.handle.update(self._bundle(), raw=True)
                    last = time.perf_counter()
                # A look holds the GIL the cell needs: wait long enough that the line
                # takes at most a tenth of the time, however many spans a look converts.
                wait = max(TICK_SECONDS, (time.perf_counter() - began) / MAX_SHARE)
            except Exception:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def replace(self, bundle: dict[str, Any]) -> None:
        """The cell ended: its trace view takes the live line's place."""
        self.stop()
        self.handle.update(bundle, raw=True)
