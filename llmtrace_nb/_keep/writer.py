"""Keep: the background writer — every record the collector appends, copied into the store.

The hot path pays nothing for the store: the collector's ``on_end`` appends its record
as it always does, and this writer's thread reads what is new from the collector's
buffer (a snapshot from the last number it wrote) every ``interval_s``, scrubs and
redacts it as files and forwarding do (``_ship/policy.clean_records``; content dropped
when capture is off at flush time), and appends it to the store in one transaction.

What can be lost: the records of the last interval when the process dies (``kill -9``),
and records the buffer evicted before the writer read them (only when more than the
buffer's bound arrive within one interval); those are counted in ``lost``. A flush that
fails (disk full, the store locked past its timeout) is retried at the next interval
with the same records, and counted in ``failures``; the notebook never sees an error.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .._capture.record import END, SPAN_ID
from . import codec

if TYPE_CHECKING:
    from .._capture.collector import SpanCollector
    from .store import Store

logger = logging.getLogger(__name__)

#: records per chunk: big enough that SQLite's per-row cost vanishes, small enough that
#: a restore of a few spans reads little
CHUNK_RECORDS = 1_000


class StoreWriter:
    """Copies the collector's new records into ``store`` under ``session``."""

    def __init__(self, collector: SpanCollector, store: Store, session: int, *,
                 content: Callable[[], bool], interval_s: float = 0.5) -> None:
        self.collector, self.store, self.session = collector, store, session
        self.content = content
        self.interval_s = interval_s
        self.written = 0
        self.lost = 0
        self.failures = 0
        self.last_error: str | None = None
        self._seq = 0
        self._generation = collector.generation
        #: span ids of records added from elsewhere (restored, loaded): not stored again
        self._skip: set[int] = set()
        self._lock = threading.Lock()  # one flush at a time (the thread, or a reader)
        # a forked child inherits this object, but not the thread, and must not write
        # through the parent's SQLite connection (SQLite forbids it): only this process
        # writes
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmtrace_nb-store",
                                        daemon=True)
        self._thread.start()

    @property
    def forked(self) -> bool:
        """True in a forked child of the process that made this writer."""
        return os.getpid() != self._pid

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> int:
        """Write what is new now; returns how many records were written."""
        from .._ship.policy import clean_records

        if self.forked:
            return 0
        with self._lock:
            snap = self.collector.snapshot(self._seq, self._generation)
            if snap.generation != self._generation:  # cleared: numbering starts over
                self._generation, self._seq = snap.generation, 0
            if snap.first_seq > self._seq:
                self.lost += snap.first_seq - self._seq
            records = snap.records
            if self._skip:
                skip = self._skip
                records = [r for r in records if r[SPAN_ID] not in skip]
                skip.difference_update(r[SPAN_ID] for r in snap.records)
            if not records:
                self._seq = snap.end_seq
                return 0
            redact = "none" if self.content() else "drop"
            try:
                cleaned = clean_records(records, redact)
                chunks = []
                for i in range(0, len(cleaned), CHUNK_RECORDS):
                    part = cleaned[i:i + CHUNK_RECORDS]
                    ends = [r[END] for r in part if r[END] is not None]
                    chunks.append((len(part), min(ends, default=None),
                                   max(ends, default=None), codec.encode(part, snap.cells)))
                self.store.append(self.session, chunks)
            except Exception as exc:  # never into the notebook: counted, retried
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.debug("llmtrace_nb: store flush failed", exc_info=True)
                return 0
            self._seq = snap.end_seq
            self.written += len(records)
            return len(records)

    def skip(self, span_ids: Iterable[int]) -> None:
        """Spans about to be added that came from the store or a file: not written."""
        with self._lock:
            self._skip.update(span_ids)

    def close(self) -> None:
        """Stop the thread after a last flush."""
        if self.forked:
            return
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)
        self.flush()
