"""Keep: stored sessions read back — into a collector (``restore``), as they were kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._capture.collector import CellRef, SpanCollector
from .._capture.record import CELL, END, Record
from . import codec
from .store import Store


@dataclass(frozen=True)
class Restored:
    added: int
    held: int  # spans the collector had already
    torn: int  # chunks that could not be read (skipped)


def read_records(store: Store, sessions: Sequence[int],
                 session_of: list[int] | None = None
                 ) -> tuple[list[Record], dict[tuple[int, int], CellRef], int]:
    """Every stored record of ``sessions`` with its cell (CELL: a key of the returned
    cells, ``(session, seq)``, or None), and how many chunks were unreadable.
    ``session_of``, if given, gets each record's session, in order."""
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
        if session_of is not None:
            session_of.extend([session] * len(found))
        for record in found:
            seq = record[CELL]
            records.append(record if seq is None else
                           (*record[:CELL], (session, seq), *record[CELL + 1:]))
    # a cell still running when its kernel died never ended: it ends with its last span
    last_end: dict[tuple[int, int], int] = {}
    for record in records:
        key, end = record[CELL], record[END]
        if key is not None and end is not None and end > last_end.get(key, 0):
            last_end[key] = end
    refs = {key: CellRef(number=i.number, name=i.name, tags=dict(i.tags),
                         trace_id=i.trace_id, root_span_id=i.root_span_id,
                         start_ns=i.start_ns,
                         end_ns=i.end_ns if i.end_ns is not None else
                         last_end.get(key, i.start_ns))
            for key, i in infos.items()}
    return records, refs, torn


def restore(collector: SpanCollector, store: Store, sessions: Sequence[int],
            before_add: Callable[[list[Record]], None] | None = None) -> Restored:
    """Add the sessions' stored spans to ``collector`` (those it holds are not added
    again), each with its cell; each restored cell is tagged with its ``session``.
    ``before_add`` sees the records first (the writer, so it does not store them again)."""
    records, refs, torn = read_records(store, sessions)
    for (session, _), ref in refs.items():
        ref.tags.setdefault("session", str(session))
    records = [r if r[CELL] is None else (*r[:CELL], refs[r[CELL]].seq, *r[CELL + 1:])
               for r in records]
    if before_add is not None:
        before_add(records)
    added = collector.add_records(records, list(refs.values()))
    return Restored(added=added, held=len(records) - added, torn=torn)
