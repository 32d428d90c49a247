"""Keep: a batch of collector records as one compact, self-contained chunk of bytes, and back.

The store (``store.py``) holds spans as chunks, one per writer flush: JSON compressed with
zlib. JSON because the standard library writes and reads it in C — a record goes in and
comes out with almost no Python per value, where OTLP/JSON through protobuf costs ~180 µs
a span each way; one chunk per flush because a row per span costs SQLite more than the
spans are worth.

A chunk holds records (``_capture/record.py``: what the collector keeps, and what a
``ReadableSpan`` is rebuilt from) column by column, each distinct resource and scope once,
and the cells its records belong to. Attribute values are JSON's own types, tuples written as lists
(and read back as lists: every reader takes any sequence); ``bytes`` is the one value
JSON has no type for, written as ``{"b64": ...}`` and read back as bytes (an attribute is
never a map, so a map always means bytes). Encoding takes records already scrubbed and
redacted (``_ship/policy.clean_records``): this module writes what it is given.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, TraceFlags

from .._capture.record import ATTRS, CELL, RARE, RESOURCE, SCOPE, WIDTH, Record

#: the chunk format this module writes and reads
FORMAT = 1
_LEVEL = 1  # zlib's fastest level already makes span JSON ~6x smaller


class ChunkError(ValueError):
    """A chunk that cannot be read (torn, corrupted, or of an unknown format)."""


@dataclass(frozen=True)
class CellInfo:
    """What a chunk keeps of a cell: enough to rebuild its ``CellRef``. ``seq`` is the
    cell's number in the session that wrote it (records name their cell by it)."""

    seq: int
    number: int | None
    name: str
    tags: Mapping[str, str]
    trace_id: int | None
    root_span_id: int | None
    start_ns: int | None
    end_ns: int | None


def _bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not an attribute value")


def _read_bytes(node: dict[str, Any]) -> Any:
    return base64.b64decode(node["b64"]) if node.keys() == {"b64"} else node


class _Index:
    """Distinct objects of a chunk (resources, scopes), each written once."""

    def __init__(self, encode: Callable[[Any], Any]) -> None:
        self.encode = encode
        self.ids: dict[int, int] = {}
        self.items: list[Any] = []

    def of(self, obj: Any) -> int:
        found = self.ids.get(id(obj))
        if found is None:
            found = self.ids[id(obj)] = len(self.items)
            self.items.append(self.encode(obj))
        return found


def _resource(resource: Resource) -> list[Any]:
    return [dict(resource.attributes), resource.schema_url or ""]


def _scope(scope: InstrumentationScope | None) -> list[Any] | None:
    if scope is None:
        return None
    return [scope.name, scope.version, scope.schema_url or "",
            dict(getattr(scope, "attributes", None) or {})]


def _rare(rare: Sequence[tuple[str, Any]]) -> list[Any]:
    out = []
    for name, value in rare:
        if name == "links":
            value = [[f"{link.context.trace_id:032x}", link.context.span_id,
                      bool(link.context.is_remote), int(link.context.trace_flags),
                      dict(link.attributes or {})] for link in value]
        out.append([name, value])
    return out


def _read_rare(rare: Sequence[Any]) -> tuple[tuple[str, Any], ...]:
    out = []
    for name, value in rare:
        if name == "links":
            value = tuple(Link(SpanContext(int(t, 16), s, remote, TraceFlags(flags)), attrs)
                          for t, s, remote, flags, attrs in value)
        elif name in ("trace_state", "dropped"):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        out.append((name, value))
    return tuple(out)


def encode(records: Sequence[Record], cells: Mapping[int, Any]) -> bytes:
    """A chunk of ``records``; ``cells`` maps the cell numbers their CELL field holds to
    the cells (``CellRef``) to keep with them.

    The chunk is columnar — one JSON list per record position — so both ways run mostly
    in C: the columns are ``zip``'s, and ``zip`` makes the records again."""
    columns: list[Any] = [list(column) for column in zip(*records, strict=True)] \
        if records else [[] for _ in range(WIDTH)]
    resources, scopes = _Index(_resource), _Index(_scope)
    columns[RESOURCE] = [resources.of(r) for r in columns[RESOURCE]]
    columns[SCOPE] = [scopes.of(s) for s in columns[SCOPE]]
    columns[RARE] = [None if r is None else _rare(r) for r in columns[RARE]]
    used = {seq: cells[seq] for seq in set(columns[CELL]) if seq is not None and seq in cells}
    data = {"format": FORMAT, "resources": resources.items, "scopes": scopes.items,
            "cells": [[c.seq, c.number, c.name, dict(c.tags), c.trace_id, c.root_span_id,
                       c.start_ns, c.end_ns] for c in used.values()],
            "columns": columns}
    # trace ids are 128-bit ints: Python's JSON reads any int exactly (and only this
    # module reads the format)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_bytes)
    return zlib.compress(text.encode("utf-8", "surrogatepass"), _LEVEL)


def decode(blob: bytes,
           cell_seqs: Callable[[dict[int, CellInfo]], Mapping[int, Any]] | None = None
           ) -> tuple[list[Record], dict[int, CellInfo]]:
    """The records of a chunk and its cells; :class:`ChunkError` if the chunk cannot be
    read. A record's CELL field is a key of the returned cells (or None), or, given
    ``cell_seqs``, the value it maps that key to (it is called with the chunk's cells):
    renumbered in the column, before the records are made."""
    try:
        text = zlib.decompress(blob).decode("utf-8", "surrogatepass")
        data = json.loads(text, object_hook=_read_bytes) if '"b64"' in text else \
            json.loads(text)
        if data.get("format") != FORMAT:
            raise ChunkError(f"chunk format {data.get('format')!r}; this version reads "
                             f"format {FORMAT}")
        return _records(data, cell_seqs)
    except ChunkError:
        raise
    except Exception as exc:  # zlib, UTF-8, JSON or shape: a chunk that is not whole
        raise ChunkError(f"unreadable chunk: {type(exc).__name__}: {exc}") from None


def _records(data: Mapping[str, Any],
             cell_seqs: Callable[[dict[int, CellInfo]], Mapping[int, Any]] | None
             ) -> tuple[list[Record], dict[int, CellInfo]]:
    resources = [Resource(attrs, schema_url or None) for attrs, schema_url in
                 data["resources"]]
    scopes = [None if s is None else InstrumentationScope(s[0], s[1], s[2] or None, s[3])
              for s in data["scopes"]]
    cells = {c[0]: CellInfo(*c) for c in data["cells"]}
    columns = data["columns"]
    if len(columns) != WIDTH or len({len(c) for c in columns}) > 1:
        raise ValueError(f"not {WIDTH} columns of one length")
    columns[RESOURCE] = [resources[i] for i in columns[RESOURCE]]
    columns[SCOPE] = [scopes[i] for i in columns[SCOPE]]
    if any(columns[RARE]):
        columns[RARE] = [r and _read_rare(r) for r in columns[RARE]]
    if not all(type(a) is dict for a in columns[ATTRS]):
        raise ValueError("attributes are not a map")
    if cell_seqs is not None and cells:
        seqs = cell_seqs(cells)
        columns[CELL] = [None if c is None else seqs[c] for c in columns[CELL]]
    # events stay lists of [name, time, attributes]: every reader unpacks or iterates
    return list(zip(*columns, strict=True)), cells
