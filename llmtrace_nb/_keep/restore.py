"""Keep: stored sessions read back — into a collector (``restore``), as they were kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._capture.collector import CellRef, SpanCollector
from .._capture.record import CELL, Record, to_readable
from . import codec
from .store import Store


@dataclass(frozen=True)
class Restored:
    added: int
    held: int  # spans the collector had already
    torn: int  # chunks that could not be read (skipped)


def read_records(store: Store, sessions: Sequence[int]
                 ) -> tuple[list[Record], dict[tuple[int, int], CellRef], int]:
    """Every stored record of ``sessions`` with its cell (CELL: a key of the returned
    cells, ``(session, seq)``, or None), and how many chunks were unreadable."""
    records: list[Record] = []
    infos: dict[tuple[int, int], codec.CellInfo] = {}
    torn = 0
    for session, data in store.chunks(sessions):
        try:
            found, cells = codec.decode(data)
        except codec.ChunkError:
            torn += 1
            continue
        for seq, info in cells.items():
            infos[(session, seq)] = info  # a later chunk knows more (the cell's end)
        for record in found:
            seq = record[CELL]
            records.append(record if seq is None else
                           (*record[:CELL], (session, seq), *record[CELL + 1:]))
    refs = {key: CellRef(number=i.number, name=i.name, tags=dict(i.tags),
                         trace_id=i.trace_id, root_span_id=i.root_span_id,
                         start_ns=i.start_ns, end_ns=i.end_ns) for key, i in infos.items()}
    return records, refs, torn


def restore(collector: SpanCollector, store: Store, sessions: Sequence[int]) -> Restored:
    """Add the sessions' stored spans to ``collector`` (those it holds are not added
    again), each with its cell."""
    records, refs, torn = read_records(store, sessions)
    entries = [(to_readable(r), None if r[CELL] is None else refs.get(r[CELL]))
               for r in records]
    added = collector.add_entries(entries, list(refs.values()))
    return Restored(added=added, held=len(entries) - added, torn=torn)
