"""Keep: stored sessions read back — into a collector (``restore``), as they were kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
                 session_of: list[int] | None = None, upto: Mapping[int, int] | None = None
                 ) -> tuple[list[Record], dict[tuple[int, int], CellRef], int]:
    """Every stored record of ``sessions``, its CELL field the ``seq`` of one of the
    returned cells (keyed by ``(session, seq in that session)``, each tagged with its
    ``session``) or None, and how many chunks were unreadable. ``session_of``, if given,
    gets each record's session; ``upto`` stops a session at that chunk (``Store.chunks``)."""
    records: list[Record] = []
    refs: dict[tuple[int, int], CellRef] = {}
    torn = 0
    for session, data in store.chunks(sessions, upto):

        def seqs(cells: dict[int, codec.CellInfo], session: int = session
                 ) -> dict[int, int]:
            out = {}
            for seq, info in cells.items():
                ref = refs.get((session, seq))
                if ref is None:
                    ref = refs[(session, seq)] = CellRef(number=info.number, name=info.name)
                # a later chunk knows more (the cell's end)
                ref.number, ref.name, ref.tags = info.number, info.name, dict(info.tags)
                ref.trace_id, ref.root_span_id = info.trace_id, info.root_span_id
                ref.start_ns, ref.end_ns = info.start_ns, info.end_ns
                out[seq] = ref.seq
            return out

        try:
            found, _ = codec.decode(data, seqs)
        except codec.ChunkError:
            torn += 1
            continue
        if session_of is not None:
            session_of.extend([session] * len(found))
        records.extend(found)
    # a cell still running when its kernel died never ended: it ends with its last span
    unended = {ref.seq: ref for ref in refs.values() if ref.end_ns is None}
    if unended:
        last_end: dict[int, int] = {}
        for record in records:
            seq, end = record[CELL], record[END]
            if seq in unended and end is not None and end > last_end.get(seq, 0):
                last_end[seq] = end
        for seq, ref in unended.items():
            ref.end_ns = last_end.get(seq, ref.start_ns)
    for (session, _), ref in refs.items():
        ref.tags.setdefault("session", str(session))
    return records, refs, torn


def restore(collector: SpanCollector, store: Store, sessions: Sequence[int],
            before_add: Callable[[list[Record]], None] | None = None) -> Restored:
    """Add the sessions' stored spans to ``collector`` (those it holds are not added
    again), each with its cell, tagged with its ``session``.
    ``before_add`` sees the records first (the writer, so it does not store them again)."""
    records, refs, torn = read_records(store, sessions)
    if before_add is not None:
        before_add(records)
    added = collector.add_records(records, list(refs.values()))
    return Restored(added=added, held=len(records) - added, torn=torn)
