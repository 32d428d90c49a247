"""Shape: the collected spans as pandas DataFrames (columns and dtypes: README, "DataFrames").

Third stage of the data flow. The build is columnar and incremental: rows converted by an
earlier call are kept, and a call converts only the records that arrived since (their
attributes normalized by ``normalize.py``). Cost is priced with the new rows, vectorized
with one price lookup per distinct (provider, model); when a price override changes the
book, the whole cost column is priced again.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, compress, islice, repeat
from operator import not_
from typing import Any

import numpy as np
import pandas as pd
from opentelemetry.trace import StatusCode

from .._capture import record as rec
from .._capture.collector import CellRef, Evicted, Snapshot, SpanCollector
from .._capture.keys import UNREADABLE
from .._fork import fresh_locks_after_fork
from .._read import calls, semconv
from .._read.calls import SameCalls
from .._read.normalize import normalize
from .._read.scrub import might_hold_secret, scrub_text
from .._read.semconv import PRICED_KINDS
from .pricing import PriceBook, cost_column

STRING_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "error_type", "cell_name", "provider",
    "request_model", "response_model", "model", "finish_reasons", "duplicate_of",
)
INT_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
               "cache_write_tokens", "reasoning_tokens")

#: spans_df() columns, in order
SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "kind", "status", "error_type",
    "start_time", "end_time", "duration_ms", "cell", "cell_name", "provider",
    "request_model", "response_model", "model", *INT_COLUMNS, "duplicate_of", "cost_usd",
    "ttft_ms",
    "is_streaming", "finish_reasons", "input_messages", "output_messages", "attributes",
)
# Columns kept while building, dropped from the public frame.
_PRIVATE = ("_given_cost", "_cell_seq", "_scope", "_response_id", "_nested", "_status_unset",
            "_derived")

#: what a call's attributes say when its instrumentation left the status unset and the
#: frame calls it "ok" (see records_frame); added to the frames' copies (see
#: "frames handed out"), never to the span's own attributes, which the cache shares
UNSET_STATUS = ("otel.status_code", "UNSET")

STATUSES = ("ok", "error", "unset")
#: the token counts a call is priced from
PRICED_COUNTS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")

CELL_COLUMNS = ("cell", "cell_name", "trace_id", "start_time", "duration_ms", "llm_calls",
                "input_tokens", "output_tokens", "cost_usd", "errors", "tags")
SUMMARY_COLUMNS = ("calls", "errors", "input_tokens", "output_tokens", "cost_usd",
                   "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "tokens_per_s")


# -- records → columns ---------------------------------------------------------------------

STATUS_CODES = {StatusCode.UNSET.value: "unset", StatusCode.OK.value: "ok",
                StatusCode.ERROR.value: "error"}
#: a record's StatusCode value → code of STATUSES
_STATUS_LUT = np.array([STATUSES.index(STATUS_CODES[v]) for v in sorted(STATUS_CODES)])
_KIND_CODE = {k: i for i, k in enumerate(semconv.KINDS)}
_UNSET = STATUSES.index("unset")
_PRICED_CODES = [_KIND_CODE[k] for k in PRICED_KINDS]


def _scope_names(scopes: Sequence[Any]) -> list[Any]:
    # a tracer's spans share one scope object: name each distinct one once (by identity:
    # a scope's own hash is computed in Python)
    ids = list(map(id, scopes))
    names = {i: getattr(s, "name", None) for i, s in dict(zip(ids, scopes, strict=True)).items()}
    return list(map(names.__getitem__, ids))


_NAT = np.iinfo(np.int64).min
#: times at or past this many ns (the year 2262) cannot be held by a timestamp
_NEVER = np.iinfo(np.int64).max


def _hex_column(ids: list[int | None], width: int) -> np.ndarray:
    # to_bytes().hex() is three times faster than format(i, "032x") and gives the same
    out = np.empty(len(ids), dtype=object)
    out[:] = [None if i is None else i.to_bytes(width, "big").hex() for i in ids]
    return out


def _shared_hex_column(ids: list[int | None], width: int) -> np.ndarray:
    """``_hex_column`` for ids neighbouring rows share (a cell's trace, its root as the
    parent): a run of one id holds one string, so a cell's 5,000 calls keep one copy."""
    out = np.empty(len(ids), dtype=object)
    values: list[str | None] = []
    last: int | None = None
    text: str | None = None
    for i in ids:
        if i != last:
            last, text = i, None if i is None else i.to_bytes(width, "big").hex()
        values.append(text)
    out[:] = values
    return out


def _times(values: Sequence[int | None], unreadable: dict[int, list[str]], name: str
           ) -> np.ndarray:
    """Nanosecond timestamps as int64, NaT's value where a span has none.

    A time past what a timestamp can hold (2**63 ns: a unit slip such as
    ``time.time_ns() * 1000``) or before 1970 is unknown, and named in ``unreadable``:
    one bad span must not make every later frame fail.
    """
    if None not in values:
        try:
            times = np.array(values, dtype="int64")
            if not len(times) or times.min() > 0:
                return times
        except (OverflowError, TypeError, ValueError):
            pass
    out = np.empty(len(values), dtype="int64")
    for i, v in enumerate(values):
        if v is None:
            out[i] = _NAT
        elif type(v) is int and 0 < v < _NEVER:
            out[i] = v
        else:
            out[i] = _NAT
            unreadable.setdefault(i, []).append(name)
    return out


def _nullable_int(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    n = len(values)
    # A column is mostly all counted or all missing: count the Nones at C speed (an
    # elementwise == None on an object array is a Python comparison per value).
    missing = values.tolist().count(None)
    if missing == 0:
        return pd.arrays.IntegerArray(values.astype("int64"), np.zeros(n, dtype=bool))
    if missing == n:
        return pd.arrays.IntegerArray(np.zeros(n, "int64"), np.ones(n, dtype=bool))
    mask = values == None  # noqa: E711 - elementwise on an object array
    return pd.arrays.IntegerArray(np.where(mask, 0, values).astype("int64"), mask.astype(bool))


def _float(values: np.ndarray | list[Any]) -> np.ndarray:
    # an object array's astype turns None into NaN
    return np.asarray(values, dtype=object).astype("float64")


def _objects(values: list[Any]) -> np.ndarray:
    # fromiter keeps each value as one object (no nested-list discovery) and is the
    # fastest way to fill an object array
    return np.fromiter(values, dtype=object, count=len(values))


def _error_types(fields: np.ndarray, events: list[Any], status: np.ndarray) -> np.ndarray:
    """error.type / exception.type, else the exception event's type, else "error"."""
    out = fields.copy()
    maybe = (out == None) & (status == "error")  # noqa: E711 - elementwise
    for i in sorted({*np.flatnonzero(maybe), *(i for i, e in enumerate(events) if e)}):
        if out[i] is not None:
            continue
        for name, _, attrs in events[i]:
            if name == "exception" and attrs.get("exception.type"):
                out[i] = semconv.error_name(str(attrs["exception.type"]))
                break
        else:
            if status[i] == "error":
                out[i] = "error"
    return out


def _finish_reasons(fields: np.ndarray, outputs: list[Any]) -> np.ndarray:
    out = fields.copy()
    for i, messages in enumerate(outputs):
        if messages and out[i] is None:
            reasons = [m["finish_reason"] for m in messages if m.get("finish_reason")]
            out[i] = ",".join(reasons) or None
    return out


def _ttft(fields: np.ndarray, events: list[Any], starts: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # 1e308 seconds is no time to first token
        ttft = _float(fields) * 1000.0
    ttft[np.isinf(ttft)] = np.nan
    for i in [i for i, e in enumerate(events) if e]:
        if np.isnan(ttft[i]) and starts[i] != _NAT:
            found = semconv.ttft_ms({}, events[i], int(starts[i]))
            if found is not None:
                ttft[i] = found
    return ttft


def _scrubbed_names(names: list[Any]) -> list[Any]:
    """Span and cell names with secrets scrubbed (``span("call with sk-…")``); names
    repeat, so each distinct one is looked at once."""
    distinct = set(names)
    distinct.discard(None)
    if not distinct or not might_hold_secret("\x00".join(map(str, distinct))):
        return names
    clean = {n: scrub_text(n) for n in distinct}
    return [clean.get(n, n) if type(n) is str else n for n in names]


def _streaming(kinds: list[str], flags: np.ndarray, ttft: np.ndarray) -> dict[str, Any]:
    """``ttft_ms`` and ``is_streaming``: a time to first token counts only for a streamed
    LLM call (openlit records one on every call; for a call it did not stream, it is the
    whole duration), and a call with one whose dialect has no streaming flag
    (pydantic-ai's ``time_to_first_chunk``, first-chunk events) was streamed."""
    llm = np.array([k == "llm" for k in kinds], dtype=bool)
    known = ~np.isnan(ttft)
    if known.any():
        flags = flags.copy()
        flags[known & llm & (flags == None)] = True  # noqa: E711 - elementwise
        ttft = np.where(known & llm & (flags != False), ttft, np.nan)  # noqa: E712
    return {"ttft_ms": ttft, "is_streaming": pd.array(flags, dtype="boolean")}


def _marked(attrs: list[Any], unreadable: dict[int, list[str]], inputs: list[Any],
            outputs: list[Any]) -> list[Any]:
    """Name the attributes (and messages) that could not be read, in the row's attributes."""
    rows = dict(unreadable)
    for i in range(len(attrs)):
        if inputs[i] is None and outputs[i] is None:
            continue
        if any(isinstance(m, list) and any(x.get("unreadable") for x in m)
               for m in (inputs[i], outputs[i])):
            rows.setdefault(i, []).append("messages")
    for i, keys in rows.items():
        earlier = attrs[i].get(UNREADABLE)  # what a loader already named
        named = [*str(earlier).split(","), *keys] if earlier else keys
        attrs[i] = {**attrs[i], UNREADABLE: ",".join(dict.fromkeys(named))}
    return attrs


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a frame is built.

    The build allocates some hundred thousand short-lived containers and makes no
    cycles; a collection meanwhile only rescans the heap — a third of a cold build at
    100k spans, measured. Freeing by reference count goes on as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: (cell seqs, trace ids) of records → their cells
CellLookup = Callable[[Sequence[int | None], Sequence[int]], list[CellRef | None]]


#: columns named as in spans_df() (numpy arrays, NaN for missing numbers) → cost per row
Pricer = Callable[[dict[str, np.ndarray]], np.ndarray]


def _no_price(columns: dict[str, np.ndarray]) -> np.ndarray:
    return columns["_given_cost"]


def records_frame(columns: Sequence[Sequence[Any]], cell_of: CellLookup,
                  price: Pricer = _no_price) -> pd.DataFrame:
    """The spans_df() columns of records given as columns (``Snapshot.columns``), and
    the private ones, a column at a time.

    Cost is priced here, from plain arrays, before any pandas object exists: pricing
    from the finished frame costs more than the rest of a small incremental build.
    """
    n = len(columns[rec.NAME])
    col = lambda pos: list(columns[pos])  # noqa: E731
    events, names = col(rec.EVENTS), col(rec.NAME)
    norm = normalize(columns[rec.ATTRS], events, names)
    f = norm.fields
    cells = cell_of(columns[rec.CELL], columns[rec.TRACE_ID])
    starts = _times(columns[rec.START], norm.unreadable, "start_time")
    ends = _times(columns[rec.END], norm.unreadable, "end_time")
    status_codes = _STATUS_LUT[np.array(col(rec.STATUS), dtype="int64")] if n else \
        np.zeros(0, "int64")
    # A finished LLM or embedding call that did not fail is "ok", however its
    # instrumentation left the OTel status (OpenLLMetry sets OK on streams, nothing on
    # plain calls); the raw status is shown in its attributes as otel.status_code
    # (UNSET_STATUS, added where the attributes are copied: _status_unset marks the rows).
    kind_codes = np.fromiter(map(_KIND_CODE.__getitem__, norm.kinds), dtype=np.int8, count=n)
    promoted = ((status_codes == _UNSET) & (ends != _NAT) & np.isin(kind_codes, _PRICED_CODES))
    if promoted.any():
        status_codes = np.where(promoted, STATUSES.index("ok"), status_codes)
    status = pd.Categorical.from_codes(status_codes, categories=STATUSES)
    known = (starts != _NAT) & (ends != _NAT)
    duration = np.where(known, (ends - starts) / 1e6, np.nan)
    request, response = f["request_model"], f["response_model"]
    model = np.where(response == None, request, response)  # noqa: E711
    inputs = norm.inputs
    attributes = _marked(norm.attributes, norm.unreadable, inputs, norm.outputs)
    counts = {c: _nullable_int(f[c]) for c in INT_COLUMNS}
    data: dict[str, Any] = {
        "trace_id": _shared_hex_column(col(rec.TRACE_ID), 16),
        "span_id": _hex_column(col(rec.SPAN_ID), 8),
        "parent_span_id": _shared_hex_column(col(rec.PARENT_ID), 8),
        "name": _objects(_scrubbed_names(names)),
        "kind": pd.Categorical.from_codes(kind_codes, categories=semconv.KINDS),
        "status": status,
        "error_type": _error_types(f["error_type"], events, np.asarray(status)),
        "start_time": pd.DatetimeIndex(starts.view("M8[ns]")).tz_localize("UTC"),
        "end_time": pd.DatetimeIndex(ends.view("M8[ns]")).tz_localize("UTC"),
        "duration_ms": duration,
        "cell": _nullable_int(_objects([c.number if c else None for c in cells])),
        "cell_name": _objects(_scrubbed_names([c.name if c else None for c in cells])),
        "provider": f["provider"],
        "request_model": request,
        "response_model": response,
        "model": model,
        **counts,
        "duplicate_of": np.full(n, None, dtype=object),
        **_streaming(norm.kinds, f["is_streaming"], _ttft(f["ttft_s"], events, starts)),
        "finish_reasons": _finish_reasons(f["finish_reasons"], norm.outputs),
        "input_messages": _objects(inputs),
        "output_messages": _objects(norm.outputs),
        "attributes": _objects(attributes),
        "_given_cost": _float(f["cost_usd"]),
        "_cell_seq": _float([c.seq if c else None for c in cells]),
        "_scope": _objects(_scope_names(columns[rec.SCOPE])),
        "_response_id": f["response_id"],
        "_nested": _nested(attributes),
        "_status_unset": promoted,
        # messages read from the row's attributes alone: the cache can let them go and
        # read them again when a frame needs them (see "messages kept, messages read")
        "_derived": np.fromiter(
            (k != "tool" and not e and (i is not None or o is not None)
             for k, e, i, o in zip(norm.kinds, events, inputs, norm.outputs, strict=True)),
            dtype=bool, count=n),
    }
    kind_codes = np.asarray(data["kind"].codes)
    data = _with_cost(data, price({
        "priced_kind": np.isin(kind_codes, [_KIND_CODE[k] for k in PRICED_KINDS]),
        "provider": f["provider"], "model": model,
        # from the counted columns, at C speed (an object column's astype is a loop)
        **{c: counts[c].to_numpy(dtype="float64", na_value=np.nan) for c in PRICED_COUNTS},
        "_given_cost": data["_given_cost"]}))
    for name in STRING_COLUMNS:
        data[name] = pd.array(data[name], dtype="string")
    return pd.DataFrame(data, index=pd.RangeIndex(n), copy=False)


def _with_cost(data: dict[str, Any], cost: np.ndarray) -> dict[str, Any]:
    at = SPAN_COLUMNS.index("cost_usd")
    items = list(data.items())
    return dict([*items[:at], ("cost_usd", cost), *items[at:]])


# -- messages kept, messages read ---------------------------------------------------------
#
# A call's messages, parsed, are most of what its row would keep: the text again (the
# span's attribute holds it as JSON) in dicts and lists, about a kilobyte a call. Rows
# whose messages were read from their own attributes alone (``_derived``: no events, not
# a tool span, not merged with another span of the same call) keep None instead, once a
# later conversion came (the last one's rows keep theirs, so the frame asked for right
# after a conversion parses nothing twice), and the frames that show messages read them
# again from the row's attributes (the cache's own, scrubbed): the same readers, the
# same result. A frame handed out then holds messages parsed for it, which it owns; its
# other rows are copied as before.


def _forget_messages(df: pd.DataFrame, start: int) -> pd.DataFrame:
    """``df`` with no messages held for its ``_derived`` rows from ``start`` on (new
    columns, as ever)."""
    derived = df["_derived"].to_numpy().copy()
    derived[:start] = False
    if not derived.any():
        return df
    df = df.copy(deep=False)
    for name in ("input_messages", "output_messages"):
        column = df[name].to_numpy(dtype=object, copy=True)
        column[derived] = None
        df[name] = column
    return df


def _let_go(df: pd.DataFrame) -> np.ndarray:
    """The ``_derived`` rows whose messages the cache let go (it holds the last
    conversion's: the frame asked for next reads them without parsing twice)."""
    return (df["_derived"].to_numpy() & df["input_messages"].isna().to_numpy()
            & df["output_messages"].isna().to_numpy())


def _read_messages(attributes: Any, kind: Any) -> tuple[Any, Any]:
    return semconv.messages(attributes, (), str(kind))


def _with_messages(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the messages the cache let go read again (new columns)."""
    rows = np.flatnonzero(_let_go(df))
    if not len(rows):
        return df
    inputs = df["input_messages"].to_numpy(dtype=object, copy=True)
    outputs = df["output_messages"].to_numpy(dtype=object, copy=True)
    attributes, kinds = df["attributes"].to_numpy(), np.asarray(df["kind"], dtype=object)
    for i in rows.tolist():
        inputs[i], outputs[i] = _read_messages(attributes[i], kinds[i])
    df = df.copy(deep=False)
    df["input_messages"], df["output_messages"] = inputs, outputs
    return df


# -- frames handed out ---------------------------------------------------------------------
#
# A frame spans() returns is the caller's: nothing done to it reaches the cache, and so no
# later frame. pandas' Copy-on-Write is not enough: it guards ``df.loc[...] = ...`` but
# not ``df[c].array[i] = ...`` (pandas 3 hands out the column's own array), and nothing
# guards the dicts and lists held in an object column. So each frame gets its own copy
# of every column's array (a memcpy; a pointer copy for strings) and of every container
# in an object column. Leaves (str, numbers, None) are shared: they cannot change, and
# copying them would cost every frame the size of every prompt kept.
#
# How deep: a row's attributes dict holds what the SDK allows, str, bool, int, float and
# tuples of them, so one dict.copy per row (from C, one map over the column) is the whole
# copy; rows whose attributes hold a container (a file's kvlist) are flagged when
# converted (``_nested``) and copied all the way down. Messages are lists of dicts whose
# tool calls are lists of dicts whose arguments are dicts of any depth, each the
# caller's to edit: every list and dict is copied, the flat message dicts (the usual
# ones) from C. Measured at 100k spans in benchmarks (``--case frames``).

#: types whose values cannot change in place: frames share them as they are
_IMMUTABLE = frozenset({str, int, float, bool, complex, bytes, type(None)})


def _own(value: Any) -> Any:
    """``value`` with every container in it copied, down to its leaves (shared)."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        if _IMMUTABLE.issuperset(map(type, value.values())):
            return value.copy()
        return {k: _own(v) for k, v in value.items()}
    if kind is list:
        return list(map(_own, value))
    if kind is tuple:
        return value if _IMMUTABLE.issuperset(map(type, value)) else tuple(map(_own, value))
    try:  # anything else (a set, a numpy value): the general way
        return copy.deepcopy(value)
    except Exception:  # what cannot be copied is shared, as ever: it must not break a frame
        return value


def _holds_container(value: Any) -> bool:
    kind = type(value)
    if kind is tuple:
        return any(map(_holds_container, value))
    return kind not in _IMMUTABLE


def _nested(attributes: list[dict[str, Any]]) -> np.ndarray:
    """Rows whose attributes hold a container: one dict.copy does not make them the
    caller's. Looked at for the whole column at once, from C: the distinct values (a
    container is unhashable, so a set of them fails), their types, and the types inside
    the tuples among them; row by row only when something else than the SDK's types is
    there (a file's kvlist)."""
    n = len(attributes)
    try:
        distinct = set(chain.from_iterable(map(dict.values, attributes)))
    except TypeError:  # unhashable: a list, a dict, a tuple holding one
        kinds: set[type] = {list}
    else:
        kinds = set(map(type, distinct))
        if tuple in kinds:
            kinds.discard(tuple)
            kinds.update(map(type, chain.from_iterable(filter(tuple.__instancecheck__,
                                                              distinct))))
    if _IMMUTABLE.issuperset(kinds):
        return np.zeros(n, dtype=bool)
    return np.fromiter((any(map(_holds_container, a.values())) for a in attributes),
                       dtype=bool, count=n)


def _owned_attributes(values: np.ndarray, nested: np.ndarray, unset: np.ndarray
                      ) -> np.ndarray:
    out = np.fromiter(map(dict.copy, values), dtype=object, count=len(values))
    for i in np.flatnonzero(nested).tolist():
        out[i] = _own(values[i])
    _mark_unset(out, unset)
    return out


def _mark_unset(attributes: np.ndarray | list[Any], unset: np.ndarray) -> None:
    """Add UNSET_STATUS to the rows' attributes: copies made for one frame."""
    key, value = UNSET_STATUS
    for i in np.flatnonzero(unset).tolist():
        attributes[i][key] = value


def _owned_objects(values: np.ndarray) -> np.ndarray:
    """An object column's values with their containers copied (message lists and their
    dicts, mostly); rows holding None or a leaf are only pointed to again."""
    items = values.tolist()
    out = values.copy()
    n = len(items)
    if items.count(None) == n:
        return out
    held = list(compress(range(n), map(not_, map(_IMMUTABLE.__contains__, map(type, items)))))
    rows = list(map(items.__getitem__, held))
    messages = list(chain.from_iterable(rows)) if set(map(type, rows)) == {list} else None
    if messages is None or not {dict}.issuperset(map(type, messages)):
        out[held] = _objects(list(map(_own, rows)))
        return out
    if _IMMUTABLE.issuperset(map(type, chain.from_iterable(map(dict.values, messages)))):
        # no tool calls, no parts: every message dict is flat (looked at once, from C)
        out[held] = _objects([list(map(dict.copy, row)) for row in rows])
        return out
    copies = list(map(dict.copy, messages))
    flat = map(_IMMUTABLE.issuperset, map(map, repeat(type), map(dict.values, messages)))
    for j in compress(range(len(messages)), map(not_, flat)):
        copies[j] = _own(messages[j])  # tool calls, content parts: copied all the way
    it = iter(copies)
    out[held] = _objects([list(islice(it, k)) for k in map(len, rows)])
    return out


def _callers(base: pd.DataFrame, columns: Sequence[str], given: Mapping[str, Any]
             ) -> pd.DataFrame:
    """The frame of ``columns`` of ``base`` that shares nothing with it (see above), with
    the values ``given`` (made for this frame) in place of some."""
    data: dict[str, Any] = {}
    for name in columns:
        column = base[name]
        if name in given:
            data[name] = given[name]
        elif name == "attributes":
            data[name] = _owned_attributes(column.to_numpy(), base["_nested"].to_numpy(),
                                           base["_status_unset"].to_numpy())
        elif column.dtype == object:
            data[name] = _owned_objects(column.to_numpy())
        elif isinstance(column.dtype, np.dtype):
            data[name] = column.to_numpy(copy=True)
        else:
            data[name] = column.array.copy()
    return pd.DataFrame(data, index=pd.RangeIndex(len(base)), copy=False)


def _without_content(base: pd.DataFrame) -> dict[str, np.ndarray]:
    """The message and attribute columns with content capture off: no messages, and the
    attributes without the keys that hold prompts or completions (new dicts)."""
    attributes = [{k: v for k, v in a.items() if not semconv.is_content(k, v)}
                  for a in base["attributes"].to_numpy()]
    for i in np.flatnonzero(base["_nested"].to_numpy()).tolist():
        attributes[i] = _own(attributes[i])
    _mark_unset(attributes, base["_status_unset"].to_numpy())
    n = len(base)
    return {"input_messages": np.full(n, None, dtype=object),
            "output_messages": np.full(n, None, dtype=object),
            "attributes": _objects(attributes)}


# -- the incremental frame ----------------------------------------------------------------


@dataclass
class _Cache:
    generation: int = -1
    first_seq: int = 0
    end_seq: int = 0
    #: the rows converted so far, priced at ``price_version``
    frame: pd.DataFrame | None = None
    price_version: int = -1
    unpriced: set[str] = field(default_factory=set)
    priced: set[str] = field(default_factory=set)
    #: which GenAI rows describe the same call (keys are row numbers, as seqs)
    calls: SameCalls = field(default_factory=SameCalls)
    #: place -> row number of a call alone in its place so far (see _new_calls)
    solo: dict[Any, int] = field(default_factory=dict)
    #: the own values of rows that now hold the merged fields of their call
    originals: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: rows from here on still hold the messages they could let go (see _forget_messages)
    held_from: int = 0
    #: tool calls the models asked for, by call id: their arguments (see _tool_calls)
    tool_calls: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    #: CellRef.seq -> totals of the cell's spans evicted from the buffer (see _fold)
    evicted: dict[int, dict[str, float]] = field(default_factory=dict)
    #: CellRef.seq -> spans evicted before any frame could count them
    uncounted: Counter[int | None] = field(default_factory=Counter)
    #: CellRef.seq -> spans evicted, counted or not
    evicted_spans: Counter[int | None] = field(default_factory=Counter)


def _priced(book: PriceBook, columns: dict[str, np.ndarray],
            groups: Mapping[tuple[str | None, str], np.ndarray] | None = None
            ) -> tuple[np.ndarray, set[str], set[str]]:
    """Cost per row (a cost the instrumentation recorded wins over ours), the models
    with no known price, and — when there are such — the models that had one."""
    models = columns["model"]
    eligible = (columns["priced_kind"] & (models != None)  # noqa: E711 - elementwise
                & ~(np.isnan(columns["input_tokens"]) & np.isnan(columns["output_tokens"])))
    cost, unpriced = cost_column(
        book, columns["provider"], models, columns["input_tokens"],
        columns["cache_read_tokens"], columns["cache_write_tokens"],
        columns["output_tokens"], eligible, groups)
    given = columns["_given_cost"]
    cost = np.where(np.isnan(given), cost, given)
    priced = set(models[~np.isnan(cost) & eligible]) if unpriced else set()
    return cost, unpriced, priced


def _price_columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    return {"priced_kind": df["kind"].isin(PRICED_KINDS).to_numpy(),
            "provider": df["provider"].to_numpy(dtype=object, na_value=None),
            "model": df["model"].to_numpy(dtype=object, na_value=None),
            **{c: df[c].to_numpy(dtype="float64", na_value=np.nan) for c in PRICED_COUNTS},
            "_given_cost": df["_given_cost"].to_numpy()}


def frame_cost(df: pd.DataFrame, book: PriceBook,
               groups: Mapping[tuple[str | None, str], np.ndarray] | None = None
               ) -> tuple[np.ndarray, list[str]]:
    """The cost column of a frame built earlier that kept ``_given_cost`` (a stored
    frame read back: the prices may have changed since), priced with ``book`` now, and
    the models with no known price. ``groups``: see ``pricing.cost_column``."""
    cost, unpriced, priced = _priced(book, _price_columns(df), groups)
    return cost, sorted(unpriced - priced)


class FrameBuilder:
    """Keeps the converted and priced rows of one collector; converts only what is new.

    Rows are priced when converted and repriced all at once only when the price book
    changes, so the next call after 1k new spans touches 1k rows, not the whole frame.
    """

    def __init__(self, collector: SpanCollector, prices: PriceBook) -> None:
        self.collector = collector
        self.prices = prices
        self._lock = threading.Lock()
        fresh_locks_after_fork(self, "_lock")
        self._cache = _Cache()
        #: converted rows by the last call (for tests and benchmarks)
        self.last_converted = 0
        # Evicted records wait in the collector until a frame is built; when they pile up
        # (a long cell, a small buffer, no reader), a thread of ours builds one, so the
        # cells' totals count them before the collector must let them go uncounted.
        self._evicted_waiting = threading.Event()
        self._folder: threading.Thread | None = None
        collector.on_evicted = self._wake_folder

    def base_frame(self) -> tuple[pd.DataFrame, Snapshot, set[str]]:
        """All rows with cost and private columns, the snapshot, the unpriced models."""
        with self._lock:
            cache = self._cache
            since = cache.end_seq if cache.frame is not None else 0
            snap, gone = self.collector.snapshot_and_evicted(since, cache.generation)
            converted = since if cache.generation == snap.generation else 0
            if cache.generation != snap.generation or cache.frame is None:
                kept = cache if cache.generation == snap.generation else _Cache()
                cache = _Cache(generation=snap.generation, first_seq=snap.first_seq,
                               end_seq=snap.first_seq, price_version=self.prices.version,
                               evicted=kept.evicted, uncounted=kept.uncounted)
            frame = cache.frame
            self._count_evicted(cache, snap, gone, converted)
            if frame is not None and snap.oldest_seq > cache.first_seq:
                evicted = min(snap.oldest_seq - cache.first_seq, len(frame))
                _fold(cache.evicted, frame.iloc[:evicted])
                frame = frame.iloc[evicted:].reset_index(drop=True)
                cache.first_seq += evicted
                cache.held_from = max(0, cache.held_from - evicted)
                cache.calls.forget_before(cache.first_seq)
                cache.solo = {p: seq for p, seq in cache.solo.items()
                              if seq >= cache.first_seq}
            if frame is not None and cache.price_version != self.prices.version:
                cache.unpriced, cache.priced = set(), set()
                frame = self._repriced(frame, cache)
            cache.price_version = self.prices.version
            start = max(cache.end_seq - snap.first_seq, 0)
            any_new = start < len(snap)
            new = None
            with _gc_paused():
                if any_new or frame is None:
                    new = records_frame(snap.columns(start), self._cell_lookup(snap),
                                        self._pricer(cache))
                    _tool_calls(cache.tool_calls, new)
                    frame, new = self._one_row_per_call(cache, frame, new,
                                                        snap.first_seq + start)
                    if frame is not None:  # the last conversion's rows let theirs go
                        frame = _forget_messages(frame, cache.held_from)
                        cache.held_from = len(frame)
                if frame is None:
                    frame = new
                elif any_new:
                    frame = pd.concat([frame, new], ignore_index=True)
            assert frame is not None
            cache.frame = frame
            cache.end_seq = snap.end_seq
            cache.first_seq = snap.end_seq - len(frame)
            self._cache = cache
            self.last_converted = max(len(snap) - start, 0)
            unpriced = cache.unpriced - cache.priced
        return frame, snap, unpriced

    def _wake_folder(self) -> None:
        self._evicted_waiting.set()
        folder = self._folder
        if folder is None or not folder.is_alive():  # none yet, or this is a forked child
            self._folder = folder = threading.Thread(target=self._fold_evicted, daemon=True,
                                                     name="llmtrace-evicted")
            folder.start()

    def _fold_evicted(self) -> None:
        while True:
            self._evicted_waiting.wait()
            self._evicted_waiting.clear()
            # a failed fold leaves those records uncounted, nothing more
            with contextlib.suppress(Exception):
                self.base_frame()

    def _count_evicted(self, cache: _Cache, snap: Snapshot, gone: Evicted, converted: int
                       ) -> None:
        """Fold into the cells' evicted totals the records evicted before any frame
        converted them (numbered ``converted`` on): a cell whose spans left the buffer
        keeps exact totals (its rows already converted are folded as they leave)."""
        cache.uncounted.update(gone.uncounted)
        cache.evicted_spans = gone.by_cell
        start = max(converted, gone.first_seq)
        if start >= gone.end_seq:
            return
        with _gc_paused():
            rows = records_frame(gone.columns(start), self._cell_lookup(snap),
                                 self._pricer(cache))
            _, rows = self._one_row_per_call(_Cache(), None, rows, start)
        _fold(cache.evicted, rows)

    def cell_totals(self, seq: int) -> dict[str, float]:
        """Running totals of one cell (``CellRef.seq``) — LLM calls, tokens, cost, calls
        with usage but no price, errors — each call counted once, evicted spans included.
        For the live line: the rows it converts are the ones the cell's view needs anyway,
        so watching a cell costs little more than not watching it."""
        frame, _, _ = self.base_frame()
        rows = frame[frame["_cell_seq"].to_numpy() == seq]
        rows = rows[counted(rows)]
        llm = rows[rows["kind"].isin(PRICED_KINDS)]
        tokens = llm["input_tokens"].sum() + llm["output_tokens"].sum()
        cost = llm["cost_usd"]
        usage = llm["input_tokens"].notna() | llm["output_tokens"].notna()
        out = {"llm_calls": float(len(llm)), "tokens": float(tokens),
               "cost_usd": float(cost.sum()), "unpriced_calls": float((cost.isna() & usage).sum()),
               "errors": float((rows["status"] == "error").sum())}
        with self._lock:
            gone = self._cache.evicted.get(seq)
        if gone:
            out["llm_calls"] += gone["llm_calls"]
            out["tokens"] += gone["input_tokens"] + gone["output_tokens"]
            out["cost_usd"] += gone["cost_usd"]
            out["unpriced_calls"] += gone["unpriced_calls"]
            out["errors"] += gone["errors"]
        return out

    def evicted(self) -> dict[int, dict[str, float]]:
        """CellRef.seq -> totals of the cell's evicted spans: ``spans`` evicted,
        ``uncounted`` of them (evicted before any frame counted them), and the sums of
        the counted ones (``llm_calls``, tokens, ``cost_usd``, ``errors``)."""
        self.base_frame()
        with self._lock:
            cache = self._cache
            out = {}
            for seq, spans in cache.evicted_spans.items():
                if seq is None:
                    continue
                out[seq] = {**cache.evicted.get(seq, {}), "spans": spans,
                            "uncounted": cache.uncounted.get(seq, 0)}
            return out

    def _one_row_per_call(self, cache: _Cache, old: pd.DataFrame | None, new: pd.DataFrame,
                          new_first: int) -> tuple[pd.DataFrame | None, pd.DataFrame]:
        """Mark the rows that describe a call another row counts (``duplicate_of``) and
        give the counted row the call's most complete fields (calls.py has the rule)."""
        changed = cache.calls.add(*_new_calls(cache, old, new, new_first))
        if not changed:
            return old, new
        new_values = {c: new[c].to_numpy(dtype=object, na_value=None) for c in _CALL_COLUMNS}
        old_len = 0 if old is None else len(old)

        def position(seq: int) -> int:
            """Where row ``seq`` is in old followed by new (negative: evicted)."""
            return seq - cache.first_seq if seq < new_first else old_len + seq - new_first

        def own(seq: int) -> dict[str, Any] | None:
            """A row's own values (before any merge), None when it was evicted."""
            if seq in cache.originals:
                return cache.originals[seq]
            if seq >= new_first:
                return {c: new_values[c][seq - new_first] for c in _CALL_COLUMNS}
            pos = position(seq)
            if old is None or not 0 <= pos < old_len:
                return None
            values = {c: _plain(old[c].iat[pos]) for c in _CALL_COLUMNS}
            if _let_go(old.iloc[pos:pos + 1])[0]:
                values["input_messages"], values["output_messages"] = _read_messages(
                    old["attributes"].iat[pos], old["kind"].iat[pos])
            return values

        writes: dict[str, dict[int, Any]] = {
            c: {} for c in (*_CALL_COLUMNS, "duplicate_of", "_derived")}
        merged_rows: list[tuple[int, dict[str, Any]]] = []
        for group in changed:
            counted, duplicates = group.counted, group.duplicates()
            counted_own = own(counted.key)
            if counted_own is None:
                continue  # the counted row was evicted: nothing to write into
            inner_first = [r for m in group.innermost_first() if (r := own(m.key)) is not None]
            cache.originals.setdefault(counted.key, counted_own)
            merged_rows.append((position(counted.key), calls.merged(counted_own, inner_first)))
            writes["duplicate_of"][position(counted.key)] = None
            for member in duplicates:
                values = cache.originals.pop(member.key, None) or own(member.key)
                if values is None:
                    continue
                for c in _CALL_COLUMNS:
                    writes[c][position(member.key)] = values[c]
                writes["duplicate_of"][position(member.key)] = str(counted.span_id)
        self._price_merged(cache, merged_rows, writes)
        for at in (*writes["input_messages"], *writes["output_messages"]):
            writes["_derived"][at] = False  # merged or restored: kept as written
        return _write(old, new, writes)

    def _price_merged(self, cache: _Cache, rows: list[tuple[int, dict[str, Any]]],
                      writes: dict[str, dict[int, Any]]) -> None:
        """Write the merged fields of counted rows, priced from those fields."""
        if not rows:
            return
        column = lambda name: np.array([r[name] for _, r in rows], dtype=object)  # noqa: E731
        costs = self._pricer(cache)({
            "priced_kind": np.ones(len(rows), dtype=bool),
            "provider": column("provider"), "model": column("model"),
            **{c: _float(list(column(c))) for c in PRICED_COUNTS},
            "_given_cost": _float(list(column("given_cost")))})
        for (at, values), cost in zip(rows, costs, strict=True):
            for c in _CALL_COLUMNS:
                writes[c][at] = cost if c == "cost_usd" else values[
                    "given_cost" if c == "_given_cost" else c]

    def _cell_lookup(self, snap: Snapshot) -> CellLookup:
        # Spans with no cell stamp (a thread with no active cell) join their trace's cell.
        by_trace = {c.trace_id: c for c in self.collector.cells() if c.trace_id is not None}

        def cells_of(seqs: Sequence[int | None], trace_ids: Sequence[int]
                     ) -> list[CellRef | None]:
            known: dict[int | None, CellRef | None] = {
                seq: snap.cells.get(seq) if seq is not None else None for seq in set(seqs)}
            out = [known[seq] for seq in seqs]
            if by_trace:
                out = [c if c is not None else by_trace.get(t)
                       for c, t in zip(out, trace_ids, strict=True)]
            return out
        return cells_of

    def _pricer(self, cache: _Cache) -> Pricer:
        def price(columns: dict[str, np.ndarray]) -> np.ndarray:
            cost, unpriced, priced = _priced(self.prices, columns)
            cache.unpriced |= unpriced
            cache.priced |= priced
            return cost
        return price

    def _repriced(self, df: pd.DataFrame, cache: _Cache) -> pd.DataFrame:
        """The frame with its cost column computed again (the price book changed)."""
        df = df.copy(deep=False)
        df["cost_usd"] = self._pricer(cache)(_price_columns(df))
        return df

    def spans(self, capture_content: bool = True, keep_private: bool = False,
              where: Callable[[pd.DataFrame], pd.Series] | None = None,
              shared: bool = False) -> pd.DataFrame:
        """spans_df(): a frame of the caller's, sharing no array and no dict or list with
        the cache or any other frame (see "frames handed out").

        ``where`` picks the rows before anything is copied (``is_call``: llm_calls_df()
        copies the calls, not every span). ``shared`` (for our readers that only sum,
        count and group: cells_df(), summary(), status) gives the public columns without
        copying them, nor reading the messages the cache let go (None there); such a
        frame must not be handed to a user nor written to.
        ``keep_private`` (for the trace document, which copies what it keeps) is a
        shared frame with the private columns as well.
        """
        base, snap, unpriced = self.base_frame()
        if where is not None:
            base = base[where(base).to_numpy()].reset_index(drop=True)
        if capture_content and not shared:
            base = _with_messages(base)
        given = {} if capture_content else _without_content(base)
        if keep_private:
            df = base.copy(deep=False)
            for name, values in given.items():
                df[name] = values
        elif shared:
            df = pd.DataFrame({c: given[c] if c in given else base[c]
                               for c in base.columns if c not in _PRIVATE}, copy=False)
        else:
            with _gc_paused():  # a copy per row: many allocations, no cycles
                df = _callers(base, [c for c in base.columns if c not in _PRIVATE], given)
        df.attrs["dropped_spans"] = snap.dropped
        df.attrs["unpriced_models"] = sorted(unpriced)
        return df


# -- evicted rows ----------------------------------------------------------------------------

#: the sums a cell's evicted rows keep (see FrameBuilder.evicted)
EVICTED_SUMS = ("llm_calls", "input_tokens", "output_tokens", "cache_read_tokens",
                "cache_write_tokens", "cost_usd", "unpriced_calls", "errors")


def _fold(totals: dict[int, dict[str, float]], rows: pd.DataFrame) -> None:
    """Add the sums of rows leaving the buffer to their cells' evicted totals."""
    rows = rows[rows["_cell_seq"].notna() & counted(rows)]
    if rows.empty:
        return
    priced = rows["kind"].isin(PRICED_KINDS).to_numpy()
    usage = rows["input_tokens"].notna() | rows["output_tokens"].notna()
    sums = pd.DataFrame({
        "cell": rows["_cell_seq"].astype("int64"),
        "llm_calls": priced.astype("int64"),
        **{c: rows[c].fillna(0).astype("int64").where(priced, 0)
           for c in ("input_tokens", "output_tokens", "cache_read_tokens",
                     "cache_write_tokens")},
        "cost_usd": rows["cost_usd"].fillna(0.0).where(priced, 0.0),
        "unpriced_calls": (priced & rows["cost_usd"].isna() & usage).astype("int64"),
        "errors": (rows["status"] == "error").astype("int64"),
    }).groupby("cell").sum()
    for cell, row in sums.iterrows():
        into = totals.setdefault(int(cell), dict.fromkeys(EVICTED_SUMS, 0))
        for name in EVICTED_SUMS:
            into[name] += row[name].item()


# -- one call, one row ----------------------------------------------------------------------

#: the columns a counted row takes from the spans of its call (calls.merged)
_CALL_COLUMNS = ("provider", "request_model", "response_model", "model", *INT_COLUMNS,
                 "cost_usd", "_given_cost", "ttft_ms", "is_streaming", "finish_reasons",
                 "input_messages", "output_messages")


#: tool calls remembered for the tool spans that run them
_TOOL_CALLS_KEPT = 10_000


def _tool_calls(known: OrderedDict[str, Any], new: pd.DataFrame) -> None:
    """Give a tool row the arguments of the call the model made, when its own are not a
    JSON object: OpenInference's LangChain tool spans record ``{"city": "Paris"}`` as
    ``Paris``. The model's call and the tool's row share the call id. The new rows'
    messages were made for this frame alone, so they are completed in place."""
    kinds = new["kind"].to_numpy()
    for messages in new["output_messages"].to_numpy()[np.isin(kinds, PRICED_KINDS)]:
        for message in messages or ():
            for call in message.get("tool_calls") or ():
                args = semconv.loads(call.get("arguments"))
                if call.get("id") and isinstance(args, dict):
                    known[str(call["id"])] = args
                    known.move_to_end(str(call["id"]))
    while len(known) > _TOOL_CALLS_KEPT:
        known.popitem(last=False)
    if not known:
        return
    for messages in new["input_messages"].to_numpy()[kinds == "tool"]:
        for message in messages or ():
            for call in message.get("tool_calls") or ():
                if not isinstance(call.get("arguments"), dict) and call.get("id") in known:
                    call["arguments"] = known[call["id"]]


def _plain(value: Any) -> Any:
    """A frame value as the matcher's rows hold it: None for missing, numpy as Python."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _places(df: pd.DataFrame) -> np.ndarray:
    """Each row's place for the matcher: its cell (spans of one call may sit in different
    traces of a cell: auto mode has no root span), else its trace."""
    cells = df["_cell_seq"].to_numpy()
    places = df["trace_id"].to_numpy(dtype=object, na_value=None)
    in_cell = ~np.isnan(cells)
    if in_cell.any():
        places = places.copy()
        places[in_cell] = cells[in_cell].astype(np.int64).tolist()
    return places


def _disjoint(places: set[Any], solo: dict[Any, int]) -> bool:
    """No place in both, looking up the smaller in the larger."""
    if len(solo) < len(places):
        return not any(map(places.__contains__, solo))
    return not any(map(solo.__contains__, places))


def _new_calls(cache: _Cache, old: pd.DataFrame | None, new: pd.DataFrame, new_first: int
               ) -> tuple[list[calls.CallSpan], list[tuple[Any, Any, Any]]]:
    """What the matcher must see of the new rows: the GenAI spans whose place holds
    another one (now or before), and (span, parent, place) of every row of those places.

    Most calls are alone in their trace: such a call is only remembered (``cache.solo``,
    its row number by place) until a second call comes to its place, and then both go to
    the matcher. That keeps a cold frame of 100k lone calls from making 100k matcher
    entries.
    """
    genai = np.flatnonzero(new["kind"].isin(PRICED_KINDS).to_numpy())
    matcher, solo = cache.calls, cache.solo
    if not len(genai) and not matcher:
        return [], []
    places = _places(new)
    rows: list[int] = []  # row numbers (seqs) of the calls for the matcher
    promoted: set[Any] = set()
    genai_places = places[genai].tolist()
    seqs = (genai + new_first).tolist()
    distinct = set(genai_places)
    if len(distinct) == len(genai_places) and _disjoint(distinct, solo) and not (
            matcher and any(map(matcher.knows, distinct))):
        solo.update(zip(genai_places, seqs, strict=True))  # each call alone, as usual
    else:
        for seq, place in zip(seqs, genai_places, strict=True):
            if place in solo:
                rows.append(solo.pop(place))
                promoted.add(place)
            elif place not in promoted and not matcher.knows(place):
                solo[place] = seq
                continue
            rows.append(seq)
    known = [p in promoted or matcher.knows(p) for p in places.tolist()] if (
        promoted or matcher) else []
    at = np.flatnonzero(np.array(known, dtype=bool)) if known else genai[:0]
    links = list(zip(new["span_id"].to_numpy(dtype=object)[at].tolist(),
                     new["parent_span_id"].to_numpy(dtype=object, na_value=None)[at].tolist(),
                     places[at].tolist(), strict=True))
    rows.sort()
    in_new = [seq for seq in rows if seq >= new_first]
    spans = dict(zip(in_new, _call_spans(new, [seq - new_first for seq in in_new], new_first,
                                          places), strict=True))
    for seq in rows:  # calls of earlier rows, alone in their place until now: a few
        pos = seq - cache.first_seq
        if seq < new_first and old is not None and 0 <= pos < len(old):
            spans[seq] = _call_spans(old, [pos], cache.first_seq, _places(old.iloc[[pos]]),
                                     one=True)[0]
    return [spans[seq] for seq in rows if seq in spans], links


_CALL_FIELDS = ("span_id", "parent_span_id", "_scope", "_response_id", "model",
                "input_tokens", "output_tokens")


def _call_spans(df: pd.DataFrame | None, positions: Sequence[int], first_seq: int,
                places: np.ndarray, *, one: bool = False) -> list[calls.CallSpan]:
    """The matcher's spans of the rows of ``df`` at ``positions`` (row numbers from
    ``first_seq``); ``places`` of all rows (of just those rows when ``one``)."""
    if df is None or not len(positions):
        return []
    at = np.asarray(positions, dtype=np.intp)
    column = {c: df[c].to_numpy(dtype=object, na_value=None)[at].tolist()
              for c in _CALL_FIELDS}
    starts = df["start_time"].array.asi8[at].tolist()
    ends = df["end_time"].array.asi8[at].tolist()
    where = places.tolist() if one else places[at].tolist()
    return [calls.CallSpan(
        key=first_seq + pos, span_id=span_id, parent_id=parent, place=place, scope=scope,
        response_id=_plain(rid), family=calls.model_family(model),
        input_tokens=_plain(inp), output_tokens=_plain(out),
        start=None if start == _NAT else start, end=None if end == _NAT else end)
        for pos, span_id, parent, place, scope, rid, model, inp, out, start, end in zip(
            positions, column["span_id"], column["parent_span_id"], where, column["_scope"],
            column["_response_id"], column["model"], column["input_tokens"],
            column["output_tokens"], starts, ends, strict=True)]


def _write(old: pd.DataFrame | None, new: pd.DataFrame, writes: dict[str, dict[int, Any]]
           ) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """``old`` and ``new`` with the values at positions of old followed by new replaced;
    columns are replaced, never written in place: frames handed out share them."""
    old_len = 0 if old is None else len(old)
    out: list[pd.DataFrame | None] = []
    for df, lo in ((old, 0), (new, old_len)):
        if df is None:
            out.append(None)
            continue
        df = df.copy(deep=False)
        for name, values in writes.items():
            here = {pos - lo: v for pos, v in values.items() if lo <= pos < lo + len(df)}
            if here:
                df[name] = _replaced(df[name], here)
        out.append(df)
    assert out[1] is not None
    return out[0], out[1]


def _replaced(column: pd.Series, values: dict[int, Any]) -> Any:
    if column.dtype == object:
        array = column.to_numpy(dtype=object, copy=True)
        for pos, value in values.items():
            array[pos] = value  # one by one: a value may be a list (messages)
        return array
    array = column.array.copy()
    array[np.fromiter(values, dtype=np.intp, count=len(values))] = [
        pd.NA if v is None and column.dtype != "float64" else
        (np.nan if v is None else v) for v in values.values()]
    return array


# -- derived frames -----------------------------------------------------------------------


def counted(spans: pd.DataFrame) -> pd.Series:
    """Rows that count in totals: every span but the duplicates of a call."""
    return spans["duplicate_of"].isna()


def is_call(spans: pd.DataFrame) -> pd.Series:
    """Rows of LLM or embedding calls, each call once."""
    return spans["kind"].isin(PRICED_KINDS) & counted(spans)


def llm_calls(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per LLM or embedding call: the GenAI rows that count."""
    out = spans[is_call(spans)].reset_index(drop=True)
    out.attrs = dict(spans.attrs)
    return out


def cells(spans: pd.DataFrame, registry: Sequence[CellRef],
          evicted: Mapping[int, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """One row per traced cell that has spans; ``evicted`` (``FrameBuilder.evicted``) adds
    the totals of spans that left the buffer, so a cell's totals survive eviction."""
    with_cell = spans[spans["cell"].notna()]
    rows = []
    gone = {(ref.number, ref.name): evicted[ref.seq] for ref in registry
            if evicted and ref.seq in evicted}
    roots = {c.root_span_id: c for c in registry if c.root_span_id is not None}
    for (cell_no, cell_name), group in with_cell.groupby(["cell", "cell_name"], sort=False,
                                                          observed=True, dropna=True):
        root = group[group["kind"] == "cell"]
        if len(root):
            r = root.iloc[0]
            trace_id, start, duration = r["trace_id"], r["start_time"], r["duration_ms"]
            ref = roots.get(int(r["span_id"], 16))
            tags = dict(ref.tags) if ref else {}
        else:
            trace_id = group["trace_id"].iloc[0]
            start = group["start_time"].min()
            duration = (group["end_time"].max() - start).total_seconds() * 1000.0
            tags = {}
        group = group[counted(group)]
        llm = group[group["kind"].isin(PRICED_KINDS)]
        row = {
            "cell": cell_no, "cell_name": cell_name, "trace_id": trace_id,
            "start_time": start, "duration_ms": duration, "llm_calls": len(llm),
            "input_tokens": llm["input_tokens"].sum(min_count=1),
            "output_tokens": llm["output_tokens"].sum(min_count=1),
            "cost_usd": llm["cost_usd"].sum(min_count=1),
            "errors": int((group["status"] == "error").sum()),
            "tags": tags,
        }
        left = gone.get((int(cell_no), cell_name))
        if left:
            for name in ("llm_calls", "input_tokens", "output_tokens", "cost_usd", "errors"):
                kept = row[name]
                row[name] = left.get(name, 0) + (0 if pd.isna(kept) else kept)
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(CELL_COLUMNS))
    df = df.astype({
        "cell": "Int64", "cell_name": "string", "trace_id": "string",
        "duration_ms": "float64", "llm_calls": "int64", "input_tokens": "Int64",
        "output_tokens": "Int64", "cost_usd": "float64", "errors": "int64",
    })
    df["start_time"] = pd.to_datetime(df["start_time"], utc=True)
    df = df.sort_values("start_time", kind="stable").reset_index(drop=True)
    df.attrs = dict(spans.attrs)
    return df


def summary(calls: pd.DataFrame, by: str | Sequence[str] = "model") -> pd.DataFrame:
    """Per-group calls, errors, tokens, cost, latency and TTFT percentiles, throughput."""
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in calls.columns]
    if missing:
        raise KeyError(f"summary(by=...): no column {missing!r}; columns are "
                       f"{', '.join(calls.columns)}")
    if calls.empty:
        df = pd.DataFrame(columns=list(SUMMARY_COLUMNS))
        df.index = pd.MultiIndex.from_tuples([], names=keys) if len(keys) > 1 else pd.Index(
            [], name=keys[0])
        df.attrs = dict(calls.attrs)
        return df
    work = calls.assign(
        _err=(calls["status"] == "error").astype("int64"),
        _secs=calls["duration_ms"] / 1000.0,
    )
    grouped = work.groupby(keys, sort=True, observed=True, dropna=False)
    out = pd.DataFrame({
        "calls": grouped.size(),
        "errors": grouped["_err"].sum(),
        "input_tokens": grouped["input_tokens"].sum(min_count=1),
        "output_tokens": grouped["output_tokens"].sum(min_count=1),
        "cost_usd": grouped["cost_usd"].sum(min_count=1),
        "latency_p50_ms": grouped["duration_ms"].quantile(0.5),
        "latency_p95_ms": grouped["duration_ms"].quantile(0.95),
        "ttft_p50_ms": grouped["ttft_ms"].quantile(0.5),
    })
    secs = grouped["_secs"].sum()
    out["tokens_per_s"] = (out["output_tokens"].astype("float64") / secs.where(secs > 0))
    out = out.astype({"calls": "int64", "errors": "int64", "input_tokens": "Int64",
                      "output_tokens": "Int64", "cost_usd": "float64"})
    out.attrs = dict(calls.attrs)
    return out
