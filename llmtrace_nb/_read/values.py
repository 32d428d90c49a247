"""Values of any origin as text and numbers: the one place each coercion is written.

Attribute values come from any instrumentation, document fields from a saved notebook,
frame cells may be NA: none is trusted to be of its type. The readers (semconv.py), the
trace document and the views all coerce through these functions, so a value reads the
same everywhere (True is no number, NaN and the infinities are no numbers either).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: what :func:`json_text` raises when JSON cannot hold a value (cycles, absurd nesting,
#: NaN when refused)
JSON_ERRORS = (TypeError, ValueError, RecursionError)


# -- text ---------------------------------------------------------------------------------


def as_text(value: Any, max_depth: int | None = None) -> str:
    """Any value as text: a string as it is, anything else as JSON, or its repr when JSON
    cannot hold it. Nesting deeper than ``max_depth`` is cut to "…" (see :func:`bounded`)."""
    if isinstance(value, str):
        return value
    try:
        return json_text(value, max_depth)
    except JSON_ERRORS:
        return repr(value)


def json_text(value: Any, max_depth: int | None = None, *, allow_nan: bool = True) -> str:
    """``value`` as JSON text, objects JSON does not know as their repr; raises one of
    ``JSON_ERRORS`` when that fails (with ``allow_nan=False``, on NaN or an infinity too)."""
    if max_depth is not None:
        value = bounded(value, max_depth)
    return json.dumps(value, ensure_ascii=False, default=repr, allow_nan=allow_nan)


def bounded(value: Any, max_depth: int, depth: int = 0) -> Any:
    """``value`` with mappings and lists nested deeper than ``max_depth`` replaced by "…"
    (mappings' keys as text, tuples as lists)."""
    if depth >= max_depth:
        return "…"
    if isinstance(value, Mapping):
        return {str(k): bounded(v, max_depth, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [bounded(v, max_depth, depth + 1) for v in value]
    return value


def to_text(value: Any) -> str | None:
    """Text, or None for None and the empty string."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    return str(value)


def to_reasons(value: Any) -> str | None:
    """Finish reasons, one or a list of them, as comma-separated text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, Sequence):
        parts = [str(v) for v in value if v is not None and str(v)]
        return ",".join(parts) or None
    return str(value)


# -- numbers and flags --------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """None, pandas' NA or NaN: a frame cell or a field that holds nothing."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def to_float(value: Any) -> float | None:
    """A finite number as a float, or None: for anything that is not a number or numeric
    text (True is no number), for NaN, the infinities and integers past the float range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, str,
                                                                     np.number)):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def to_count(value: Any) -> int | None:
    """A token count, or None when the value is not a sane non-negative integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 2**62 else None
    if isinstance(value, float):
        if math.isfinite(value) and value >= 0 and value.is_integer() and value < 2**62:
            return int(value)
        return None
    if isinstance(value, str):
        text = value.strip()
        # isdigit alone admits "²" and other digits int() refuses
        if text.isascii() and text.isdigit() and len(text) < 19:
            return int(text)
    return None


def to_bool(value: Any) -> bool | None:
    """A flag, from a bool or from "true" / "1" / "yes" and "false" / "0" / "no"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
    return None
