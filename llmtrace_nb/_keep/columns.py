"""Keep: a frame's scalar columns as bytes, and many of them back as one frame.

``history()`` reads a session's spans through the frame builder once and keeps what it
built here (``store.py``'s ``frames`` table), so reading a week of sessions again is a
few array copies per column instead of JSON per span: 1M spans would take ~20 s through
the records, and only columns held as arrays come back in the ≤ 2 s a trend query may
take (benchmarks/RESULTS.md).

Only columns of these dtypes are kept — the per-span dicts and lists (attributes,
messages) are what makes reading slow, and stay in the chunks:

- ``string``: codes into the column's distinct values (JSON), -1 for missing;
- ``category``: codes into its categories;
- ``Int64`` / ``boolean``: values and a mask;
- ``float64``, ``bool``, ``datetime64[ns, UTC]``: the values.

A blob is a zlib'd JSON header (names, dtypes, distinct values, array lengths) and the
raw little-endian arrays after it. Only this module reads the format, and it says which
``FORMAT`` wrote it: a blob of another format is built again, never misread.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: the frame format this module writes and reads
FORMAT = 1
_LEVEL = 1
_HEAD = struct.Struct("<I")
_NAT = np.iinfo("int64").min


class ColumnsError(ValueError):
    """A blob that cannot be read (torn, or of another format)."""


def keepable(df: pd.DataFrame) -> list[str]:
    """The columns of ``df`` this module keeps (see the module's list)."""
    return [name for name, dtype in df.dtypes.items() if _kind(dtype) is not None]


def _kind(dtype: Any) -> str | None:
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(dtype, pd.Int64Dtype):
        return "Int64"
    if isinstance(dtype, pd.BooleanDtype):
        return "boolean"
    if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC" \
            and dtype.unit == "ns":
        return "utc"
    if dtype == np.float64:
        return "float64"
    if dtype == np.bool_:
        return "bool"
    return None


def _smallest(values: np.ndarray) -> np.ndarray:
    """Integers in the narrowest little-endian type that holds them: most of a blob is
    small numbers (codes, token counts), and every byte is decompressed on each read."""
    if not len(values):
        return values.astype("<i1")
    low, high = int(values.min()), int(values.max())
    for dtype in ("<i1", "<i2", "<i4"):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return values.astype(dtype)
    return values.astype("<i8")


def _constant(values: np.ndarray) -> bool:
    if len(values) < 2:
        return False
    first = values[:1]
    if values.dtype.kind == "f" and np.isnan(first[0]):
        return bool(np.isnan(values).all())
    return bool((values == first).all())


def _stored(values: np.ndarray) -> tuple[str, bytes]:
    """An array's type and bytes: one value when all are equal (``=`` before the type:
    missing columns — no cost, no TTFT, no cache tokens — are most of a frame, and
    cost a read as much as their size), bools as bits, the rest as they are."""
    if _constant(values):
        return "=" + values.dtype.str, values[:1].tobytes()
    if values.dtype == np.bool_:
        return "bits", np.packbits(values).tobytes()
    return values.dtype.str, values.tobytes()


def encode(df: pd.DataFrame) -> bytes:
    """The keepable columns of ``df`` (:func:`keepable`), in order, as one blob."""
    columns: list[dict[str, Any]] = []
    buffers: list[bytes] = []
    for name in keepable(df):
        series = df[name]
        kind = _kind(series.dtype)
        entry: dict[str, Any] = {"name": name, "kind": kind}
        if kind == "string":
            codes, uniques = pd.factorize(series.to_numpy(dtype=object, na_value=None),
                                          use_na_sentinel=True)
            entry["values"] = [str(v) for v in uniques]
            arrays = [_smallest(codes)]
        elif kind == "category":
            entry["values"] = [str(v) for v in series.cat.categories]
            arrays = [_smallest(series.cat.codes.to_numpy())]
        elif kind == "Int64":
            arrays = [_smallest(series.to_numpy(dtype="int64", na_value=0)),
                      series.isna().to_numpy()]
        elif kind == "boolean":
            arrays = [series.to_numpy(dtype="bool", na_value=False), series.isna().to_numpy()]
        elif kind == "bool":
            arrays = [series.to_numpy()]
        elif kind == "utc":
            arrays = [series.array.asi8.astype("<i8")]
        else:
            arrays = [series.to_numpy().astype("<f8")]
        stored = [_stored(a) for a in arrays]
        entry["dtypes"] = [dtype for dtype, _ in stored]
        buffers += [data for _, data in stored]
        columns.append(entry)
    head = json.dumps({"format": FORMAT, "rows": len(df), "columns": columns,
                       "sizes": [len(b) for b in buffers]},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8",
                                                                        "surrogatepass")
    body = b"".join([_HEAD.pack(len(head)), head, *buffers])
    return zlib.compress(body, _LEVEL)


#: how many arrays a column of each kind is kept as
_ARRAYS = {"string": 1, "category": 1, "Int64": 2, "boolean": 2, "bool": 1, "utc": 1,
           "float64": 1}


class Part:
    """One blob, read: its rows, and per column its kind, distinct values and arrays."""

    def __init__(self, blob: bytes) -> None:
        try:
            body = zlib.decompress(blob)
            (size,) = _HEAD.unpack_from(body)
            head = json.loads(body[_HEAD.size:_HEAD.size + size].decode("utf-8",
                                                                         "surrogatepass"))
        except Exception as exc:  # zlib, struct, UTF-8, JSON: not a whole blob
            raise ColumnsError(f"unreadable columns: {type(exc).__name__}: {exc}") from None
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise ColumnsError("columns of another format")
        self.rows: int = head["rows"]
        self.columns: dict[str, tuple[str, list[str] | None, list[np.ndarray]]] = {}
        offset, sizes = _HEAD.size + size, iter(head["sizes"])
        if offset + sum(head["sizes"]) != len(body):
            raise ColumnsError("columns of the wrong length")

        def take(dtype: str) -> np.ndarray:
            nonlocal offset
            n = next(sizes)
            constant = dtype.startswith("=")
            kind = "|u1" if dtype == "bits" else dtype.removeprefix("=")
            if kind not in _READABLE:
                raise ColumnsError(f"an array of type {dtype!r}")
            out = np.frombuffer(body, dtype=kind, count=n // np.dtype(kind).itemsize,
                                offset=offset)
            offset += n
            if constant and len(out) == 1:
                out = np.full(self.rows, out[0])
            elif dtype == "bits":
                out = np.unpackbits(out, count=self.rows).view(bool)
            if len(out) != self.rows:
                raise ColumnsError("a column of the wrong length")
            return out

        for entry in head["columns"]:
            kind = entry["kind"]
            if kind not in _ARRAYS or len(entry["dtypes"]) != _ARRAYS[kind]:
                raise ColumnsError(f"a column of kind {kind!r}")
            self.columns[entry["name"]] = (kind, entry.get("values"),
                                           [take(dtype) for dtype in entry["dtypes"]])


_READABLE = {"|i1", "<i2", "<i4", "<i8", "|u1", "<f8", "|b1"}


def parts(blob: bytes) -> Part:
    """A blob read, ready for :func:`frame` (:class:`ColumnsError` if it cannot be)."""
    return Part(blob)


def frame(read: Sequence[Part],
          labels: dict[str, tuple[np.ndarray, list[str]]] | None = None) -> pd.DataFrame:
    """The blobs' rows, one after the other, as one frame with the first blob's columns
    (a column another blob lacks is missing there). ``labels``, if given, gets the
    codes (-1: missing) and distinct values of the string columns made from them."""
    if not read:
        return pd.DataFrame()
    total = sum(p.rows for p in read)
    out: dict[str, Any] = {}
    for name, (kind, _, _) in read[0].columns.items():
        pieces = [p.columns.get(name) for p in read]
        if kind in ("string", "category"):
            out[name] = _labelled(kind, pieces, [p.rows for p in read], name, labels)
            continue
        # a blob without the column (an older one) has it missing on its rows
        whole = [p if p is not None and p[0] == kind else None for p in pieces]
        data = np.concatenate([p[2][0] if p is not None else
                               np.zeros(part.rows, _FILLER[kind])
                               for p, part in zip(whole, read, strict=True)])
        if kind in ("Int64", "boolean"):
            missing = np.concatenate([p[2][1] if p is not None else
                                      np.ones(part.rows, bool)
                                      for p, part in zip(whole, read, strict=True)])
        else:
            missing = np.concatenate([np.full(part.rows, p is None)
                                      for p, part in zip(whole, read, strict=True)])
        if kind == "Int64":
            out[name] = pd.arrays.IntegerArray(data.astype("int64"), missing)
        elif kind == "boolean":
            out[name] = pd.arrays.BooleanArray(data, missing)
        elif kind == "utc":
            data = np.where(missing, _NAT, data) if missing.any() else data
            out[name] = pd.DatetimeIndex(data.view("datetime64[ns]")).tz_localize("UTC")
        elif kind == "float64":
            out[name] = np.where(missing, np.nan, data) if missing.any() else data
        else:
            out[name] = data & ~missing
    df = pd.DataFrame(out, copy=False)
    if len(df) != total:  # a frame of no columns
        df = pd.DataFrame(index=range(total))
    return df


#: what a blob without the column contributes (masked as missing)
_FILLER = {"Int64": "<i1", "boolean": "bool", "utc": "<i8", "float64": "<f8", "bool": "bool"}


def _labelled(kind: str, pieces: list[Any], rows: list[int], name: str,
              labels: dict[str, tuple[np.ndarray, list[str]]] | None) -> Any:
    """One string or category column from the pieces' codes and distinct values: the
    distinct values of all pieces are merged and the codes renumbered, so a string is
    made once per distinct value, not once per row — except where most values are
    distinct (ids), where mapping each piece's values costs more than it saves."""
    seen: dict[str, int] = {}
    codes = []
    if kind == "string" and sum(len(p[1] or ()) for p in pieces if p is not None) > \
            sum(rows) // 4:
        values = []
        for piece, n in zip(pieces, rows, strict=True):
            if piece is None or piece[0] != kind:
                values.append(np.full(n, None, dtype=object))
                continue
            table = np.array([*piece[1], None], dtype=object)
            values.append(table[piece[2][0]])  # -1 picks the trailing None
        joined = np.concatenate(values) if values else np.zeros(0, object)
        return pd.array(joined, dtype="string")
    for piece, n in zip(pieces, rows, strict=True):
        if piece is None or piece[0] != kind:
            codes.append(np.full(n, -1, dtype="int64"))
            continue
        remap = np.array([seen.setdefault(v, len(seen)) for v in piece[1]] + [-1],
                         dtype="int64")
        codes.append(remap[piece[2][0]])
    joined_codes = np.concatenate(codes) if codes else np.zeros(0, "int64")
    names = list(seen)
    if kind == "category":
        return pd.Categorical.from_codes(joined_codes, categories=names)
    if labels is not None:
        labels[name] = (joined_codes, names)
    table = pd.array(names, dtype="string")
    return table.take(joined_codes, allow_fill=True)
