"""Normalize many spans at once: semconv's tables applied column by column.

``semconv.scalar_fields`` reads one span; a DataFrame needs 100k of them in well under a
second. Spans from one instrumentation carry the same attribute keys, so everything that
depends only on the keys — which of a field's candidate keys are there, whether a message
dialect or a kind-carrying key is, which keys name secrets — is worked out once per key
set (a ``_Plan``), and each field is then read for the whole group of spans with that key
set in one comprehension. The results equal ``semconv`` span by span.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._capture.record import EventRecord
from . import semconv
from .scrub import is_secret_key, might_hold_secret, scrub_attributes, scrub_value
from .values import to_bool, to_count, to_reasons, to_text

SCALARS = tuple(semconv.FIELD_KEYS)
_COUNT_LIMIT = 2**62


@dataclass(frozen=True)
class _Plan:
    """What spans with one key tuple need; worked out once per key tuple."""

    #: (field, its candidate keys that are present, in preference order)
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    kind_keys: tuple[tuple[str, Mapping[str, str]], ...]
    fallbacks: bool  # invocation parameters or cost parts present
    messages: bool
    secret_keys: bool


@functools.lru_cache(maxsize=2048)
def _plan(keys: tuple[str, ...]) -> _Plan:
    present = set(keys)
    return _Plan(
        fields=tuple((name, found) for name, candidates in semconv.FIELD_KEYS.items()
                     if (found := tuple(k for k in candidates if k in present))),
        kind_keys=tuple((k, table) for k, table in semconv.KIND_KEYS if k in present),
        fallbacks=any(k in present for k in semconv.FALLBACK_KEYS),
        messages=bool(semconv.MESSAGE_KEYS & present) or any(
            k.startswith(semconv.MESSAGE_PREFIXES) for k in keys),
        secret_keys=any(is_secret_key(k) for k in keys),
    )


@dataclass
class Normalized:
    """Per-span results, each aligned with the input spans."""

    fields: dict[str, np.ndarray]
    kinds: list[str]
    attributes: list[dict[str, Any]]
    inputs: list[Any]
    outputs: list[Any]
    #: row -> attribute keys whose values could not be read
    unreadable: dict[int, list[str]] = field(default_factory=dict)


def _distinct(values: list[Any]) -> set[Any] | None:
    """The set of the values, or None when one is unhashable (a list read from a file)."""
    try:
        return set(values)
    except TypeError:
        return None


def _coerce_column(raw: list[Any], name: str) -> list[Any]:
    coerce = semconv.COERCE.get(name, to_text)
    # A column from one instrumentation is nearly always of one type and already usable
    # (model names, token counts): checking its types (and a count column's range) in C
    # is far cheaper than checking every value in Python.
    types = set(map(type, raw))
    if len(types) == 1:
        only = next(iter(types))
        if only is str and coerce in (to_text, to_reasons) \
                and "" not in raw:
            return raw
        if only is int and coerce is to_count \
                and min(raw) >= 0 and max(raw) < _COUNT_LIMIT:
            return raw
        if only is bool and coerce is to_bool:
            return raw
    if coerce is to_count:
        return [v if type(v) is int and 0 <= v < _COUNT_LIMIT else coerce(v) for v in raw]
    if coerce is to_text:
        return [v if type(v) is str and v else coerce(v) for v in raw]
    if coerce is to_bool:
        return [v if type(v) is bool else coerce(v) for v in raw]
    return [coerce(v) for v in raw]


def _read_field(group: list[Mapping[str, Any]], name: str, keys: tuple[str, ...],
                unreadable: dict[int, list[str]], rows: Sequence[int]) -> list[Any]:
    """One field for a group of spans: the first candidate key whose value is usable."""
    first = keys[0]
    values = _coerce_column([a[first] for a in group], name)
    if None in values:
        # Some value could not be read: say so, and try the next candidate key.
        for j, value in enumerate(values):
            if value is None:
                for key in keys:
                    raw = group[j][key]
                    value = _coerce_column([raw], name)[0]
                    if value is not None:
                        values[j] = value
                        break
                    if raw is not None:
                        unreadable.setdefault(rows[j], []).append(key)
    return values


def _scrubbed(keys: tuple[str, ...], group: list[Mapping[str, Any]], plan: _Plan
              ) -> list[dict[str, Any]]:
    """The group's attributes, secrets scrubbed: the spans' own mappings where no value
    holds a secret (the frame shares them and copies them when it hands them out, see
    frames.py), copies where one does.

    Each key's values are searched joined into one string first: in the common case no
    value looks like a secret (a URL does, until its user-info is checked) and nothing
    is copied; a span is copied only when a value of it changes.
    """
    if plan.secret_keys:
        return [scrub_attributes(a) for a in group]
    dicts: list[Any] = list(group)  # read only from here on, but for the copies below
    if not _suspect([v for a in group for v in a.values()]):
        return dicts
    copied: set[int] = set()
    for key in keys:
        column = [a[key] for a in group]
        if not _suspect(column):
            continue
        for j, value in enumerate(column):
            clean = scrub_value(value)
            if clean is not value and clean != value:
                if j not in copied:
                    dicts[j] = dict(dicts[j])
                    copied.add(j)
                dicts[j][key] = clean
    return dicts


def _suspect(values: list[Any]) -> bool:
    """Could any of these values hold a secret? One search over their distinct values
    joined (attribute values repeat: models, operations, URLs, system prompts)."""
    distinct = _distinct(values)
    if distinct is not None:
        values = list(distinct)
    texts = [v for v in values if type(v) is str]
    if len(texts) < len(values):  # sequences and mappings can hold strings too
        texts += [repr(v) for v in values if type(v) not in (str, int, float, bool)]
    return bool(texts) and might_hold_secret("\x00".join(texts))


def _kinds(group: list[Mapping[str, Any]], plan: _Plan) -> list[str | None]:
    kinds: list[str | None] = [None] * len(group)
    for key, table in plan.kind_keys:
        column = [a[key] for a in group]
        distinct = _distinct(column)  # few distinct values: look each up once
        found = {v: table.get(v.lower()) for v in distinct or () if type(v) is str}
        if kinds.count(None) == len(kinds) and set(map(type, column)) == {str}:
            kinds = list(map(found.get, column))  # the first key found: no kind yet
            continue
        kinds = [k if k is not None else found.get(v) if type(v) is str else None
                 for k, v in zip(kinds, column, strict=True)]
        if None not in kinds:
            break
    return kinds


def normalize(attributes: Sequence[Mapping[str, Any]],
              events: Sequence[tuple[EventRecord, ...]], names: Sequence[str]) -> Normalized:
    """Normalize spans given as their attribute dicts, events and names."""
    n = len(attributes)
    keys = list(map(tuple, attributes))
    groups: dict[tuple[str, ...], Sequence[int]] = {}
    if len(distinct := dict.fromkeys(keys)) == 1:
        groups = {next(iter(distinct)): range(n)}
    else:
        grouping: dict[tuple[str, ...], list[int]] = {}
        for row, signature in enumerate(keys):
            grouping.setdefault(signature, []).append(row)
        groups.update(grouping)
    fields = {name: np.full(n, None, dtype=object) for name in SCALARS}
    kinds: list[Any] = [None] * n
    scrubbed: list[Any] = [None] * n
    unreadable: dict[int, list[str]] = {}
    message_rows: list[int] = []
    for group_keys, rows in groups.items():
        plan = _plan(group_keys)
        whole = len(rows) == n
        group = list(attributes) if whole else [attributes[i] for i in rows]
        at: Any = slice(None) if whole else np.array(rows)
        for name, field_keys in plan.fields:
            column = np.empty(len(rows), dtype=object)
            column[:] = _read_field(group, name, field_keys, unreadable, rows)
            fields[name][at] = column
        dicts = _scrubbed(group_keys, group, plan)
        if whole:
            kinds, scrubbed = _kinds(group, plan), dicts
        else:
            for j, (kind, attrs) in enumerate(zip(_kinds(group, plan), dicts, strict=True)):
                kinds[rows[j]], scrubbed[rows[j]] = kind, attrs
        if plan.fallbacks:
            for i in rows:
                _fallbacks(attributes[i], fields, i)
        if plan.messages:
            message_rows.extend(rows)
    _finish_fields(fields)
    if None in kinds:
        for row in [row for row, kind in enumerate(kinds) if kind is None]:
            kinds[row] = _kind_from_fields(fields, row)
    inputs: list[Any] = [None] * n
    outputs: list[Any] = [None] * n
    # Messages come from the scrubbed attributes, so they need no scrubbing of their own;
    # those read from events (old dialects) are scrubbed after.
    with_messages = set(message_rows)
    candidates = with_messages.union(
        [row for row, e in enumerate(events) if e] if any(events) else (),
        [row for row, kind in enumerate(kinds) if kind == "tool"] if "tool" in kinds else ())
    for i in sorted(candidates):
        inp, out = semconv.messages(scrubbed[i], events[i], kinds[i], names[i])
        if events[i] and i not in with_messages:
            inp, out = scrub_value(inp), scrub_value(out)
        inputs[i], outputs[i] = inp, out
    return Normalized(fields, kinds, scrubbed, inputs, outputs, unreadable)


def _fallbacks(attrs: Mapping[str, Any], fields: dict[str, np.ndarray], i: int) -> None:
    """semconv's fallbacks (invocation parameters, cost from its parts) for row ``i``."""
    out = {name: fields[name][i] for name in ("request_model", "is_streaming", "cost_usd")}
    semconv.fallbacks(attrs, out)
    for name, value in out.items():
        fields[name][i] = value


def _finish_fields(fields: dict[str, np.ndarray]) -> None:
    cost = fields["cost_usd"]
    for i in np.flatnonzero(cost != None):  # noqa: E711 - elementwise on an object array
        cost[i] = semconv.given_cost(cost[i])
    errors = fields["error_type"]
    present = np.flatnonzero(errors != None)  # noqa: E711 - elementwise on an object array
    names: dict[str, str] = {}
    for i in present:
        raw = errors[i]
        if raw not in names:
            names[raw] = semconv.error_name(raw)
        errors[i] = names[raw]


def _kind_from_fields(fields: dict[str, np.ndarray], i: int) -> str:
    return semconv.kind_from_fields(fields["request_model"][i], fields["response_model"][i],
                                    fields["input_tokens"][i], fields["output_tokens"][i])
