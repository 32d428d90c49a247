"""Notebooks as a source: the trace documents saved in an executed ``.ipynb``, as spans.

Every traced cell's output holds its trace document (``application/vnd.llmtrace.trace+json``,
version 1; ``_shape/document.py``). Those documents are read back here into SDK spans with
the attributes our readers understand, so a colleague's executed notebook, or one run by
papermill in CI, fills the same frames, views and files as a live session — without
running anything.

A document keeps the spans' fields (ids, name, kind, status, model, tokens, cost, TTFT,
times) and, as far as its size budget allowed, their messages and attributes; a span's
fields become the GenAI attributes that say them again (``gen_ai.request.model``,
``gen_ai.usage.input_tokens``, ``gen_ai.input.messages``, …), next to the attributes the
document kept. What a document does not hold cannot come back, and ``Notebook.notes``
says so per cell: spans past its ``max_spans`` (only their totals are in ``omitted``),
spans evicted from the live buffer before the view was built (``evicted``), a span whose
detail did not fit (no messages or attributes), texts cut at ``max_text`` characters (the
marker stays in the text). Times are kept to the microsecond; span events and links are
not in documents. A cost the document gives is kept as the span's recorded cost.

A notebook is untrusted input: only a regular file is read; a document of another
version is skipped and named in the notes; a span with a bad id or time is an error that
names the cell and the span, and nothing of the notebook is loaded.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .._capture.keys import CELL_NAME, CELL_NUMBER
from .._capture.keys import KIND as OWN_KIND
from .._read import semconv
from .._shape.document import MIME_TYPE, VERSION
from .files import Loaded, TraceFileError, _open_regular, _Read, _with_cells

_SCOPE = InstrumentationScope("llmtrace_nb.notebook")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_STATUS = {"error": StatusCode.ERROR, "ok": StatusCode.OK}
#: a notebook bigger than this is not read (documents are a few MB at most each)
MAX_NOTEBOOK_BYTES = 1 << 30

#: a document field → the attribute that says it again (the first key our readers try)
_FIELD_ATTRIBUTE = {
    name: semconv.FIELD_KEYS[name][0]
    for name in ("provider", "request_model", "response_model", "input_tokens",
                 "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens",
                 "reasoning_tokens", "error_type")
}
_TTFT = semconv.FIELD_KEYS["ttft_s"][0]
_COST = "gen_ai.usage.cost"
_STREAMING = semconv.FIELD_KEYS["is_streaming"][0]
_FINISH = semconv.FIELD_KEYS["finish_reasons"][0]
_INPUT = semconv.INPUT_READERS[0].keys[0]
_OUTPUT = semconv.OUTPUT_READERS[0].keys[0]


@dataclass
class Notebook(Loaded):
    """What a notebook's outputs held: spans with their cells, and what they leave out."""

    documents: int = 0
    notes: list[str] = field(default_factory=list)


def _hex_id(value: Any, width: int, what: str) -> int:
    if not isinstance(value, str) or len(value) != width:
        raise ValueError(f"{what} is not {width} hex digits: {str(value)[:40]!r}")
    number = int(value, 16)  # ValueError on anything but hex digits
    if number == 0:
        raise ValueError(f"{what} is all zeros")
    return number


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 0 else None


def _attributes(doc_span: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes a document kept, with each field it shows said again."""
    kept = doc_span.get("attributes")
    attrs: dict[str, Any] = {}
    if isinstance(kept, Mapping):
        for key, value in kept.items():
            if isinstance(value, str | bool | int | float):
                attrs[str(key)] = value
            elif isinstance(value, list) and all(isinstance(v, str | bool | int | float)
                                                 for v in value):
                attrs[str(key)] = tuple(value)
            elif value is not None:  # a nested value the document wrote as JSON
                attrs[str(key)] = json.dumps(value, ensure_ascii=False)
    model = doc_span.get("model")
    fields = dict(doc_span)
    if isinstance(model, str):  # the document leaves out a request/response model = model
        fields.setdefault("request_model", model)
        fields.setdefault("response_model", model)
    if fields.get("total_tokens") is None:
        tokens = [_count(fields.get(k)) for k in ("input_tokens", "output_tokens")]
        if any(t is not None for t in tokens):
            fields["total_tokens"] = sum(t or 0 for t in tokens)
    for name, key in _FIELD_ATTRIBUTE.items():
        value = fields.get(name)
        if value is None or any(k in attrs for k in semconv.FIELD_KEYS[name]):
            continue
        if name.endswith("_tokens"):
            value = _count(value)
        if isinstance(value, str | int):
            attrs[key] = value
    cost = _number(doc_span.get("cost_usd"))
    if cost is not None and cost > 0:
        attrs.setdefault(_COST, cost)
    ttft = _number(doc_span.get("ttft_ms"))
    if ttft is not None:
        attrs.setdefault(_TTFT, ttft / 1000)
    if doc_span.get("is_streaming") is True:
        attrs.setdefault(_STREAMING, True)
    elif doc_span.get("kind") in semconv.PRICED_KINDS:  # the document leaves out False
        attrs.setdefault(_STREAMING, False)
    reasons = doc_span.get("finish_reasons")
    if isinstance(reasons, str) and reasons:
        attrs.setdefault(_FINISH, tuple(reasons.split(",")))
    for key, messages in ((_INPUT, doc_span.get("input_messages")),
                          (_OUTPUT, doc_span.get("output_messages"))):
        if isinstance(messages, list) and messages:
            attrs.setdefault(key, json.dumps(messages, ensure_ascii=False))
    return attrs


def _span(doc: Mapping[str, Any], doc_span: Mapping[str, Any], origin_ns: int,
          resource: Resource) -> _Read:
    trace_hex = doc_span.get("trace_id") or doc.get("trace_id")
    trace_id = _hex_id(trace_hex, 32, "trace_id")
    span_id = _hex_id(doc_span.get("span_id"), 16, "span_id")
    parent_hex = doc_span.get("parent_span_id")
    parent = (None if parent_hex is None else
              SpanContext(trace_id, _hex_id(parent_hex, 16, "parent_span_id"), False,
                          _SAMPLED))
    start_ms, duration_ms = _number(doc_span.get("start_ms")), _number(
        doc_span.get("duration_ms"))
    start = origin_ns + round((start_ms or 0.0) * 1e6)
    end = start + round(duration_ms * 1e6) if duration_ms is not None else None
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"times out of range: start_ms={start_ms}, "
                         f"duration_ms={duration_ms}")
    attrs = _attributes(doc_span)
    kind = doc_span.get("kind")
    number, name = doc.get("cell"), doc.get("name")
    number = number if type(number) is int and number >= 0 else None
    name = name if isinstance(name, str) else None
    tags: dict[str, str] | None = None
    if kind == "cell":
        attrs[OWN_KIND] = "cell"
        if number is not None:
            attrs[CELL_NUMBER] = number
        if name is not None:
            attrs[CELL_NAME] = name
        tags = {}
    elif isinstance(kind, str) and kind in semconv.KINDS and semconv.span_kind(
            attrs, doc_span) != kind:
        attrs[OWN_KIND] = kind  # the attributes kept do not say it alone
    status = _STATUS.get(doc_span.get("status") or "", StatusCode.UNSET)
    error_type = doc_span.get("error_type")
    span = ReadableSpan(
        name=str(doc_span.get("name") or ""),
        context=SpanContext(trace_id, span_id, False, _SAMPLED), parent=parent,
        resource=resource, attributes=attrs,
        kind=SpanKind.CLIENT if kind in semconv.PRICED_KINDS else SpanKind.INTERNAL,
        instrumentation_scope=_SCOPE,
        status=Status(status, error_type if isinstance(error_type, str) and
                      status is StatusCode.ERROR else None),
        start_time=start, end_time=end)
    return _Read(span, number, name, tags)


def _documents(nb: Any) -> list[tuple[int, Any]]:
    """(cell index, document) for every trace document in the notebook's outputs."""
    found = []
    cells = nb.get("cells") if isinstance(nb, Mapping) else None
    for index, cell in enumerate(cells if isinstance(cells, list) else ()):
        outputs = cell.get("outputs") if isinstance(cell, Mapping) else None
        for output in outputs if isinstance(outputs, list) else ():
            data = output.get("data") if isinstance(output, Mapping) else None
            if isinstance(data, Mapping) and MIME_TYPE in data:
                doc = data[MIME_TYPE]
                if isinstance(doc, str):  # some writers keep JSON MIME data as text
                    try:
                        doc = json.loads(doc)
                    except ValueError:
                        doc = None
                found.append((index, doc))
    return found


def _notes(index: int, doc: Mapping[str, Any]) -> list[str]:
    where = f"cell {index + 1} ({doc.get('name')!s:.60})"
    notes = []
    omitted, evicted = doc.get("omitted"), doc.get("evicted")
    if isinstance(omitted, Mapping) and omitted.get("spans"):
        notes.append(f"{where}: {omitted['spans']:,} spans past the document's limit are "
                     "not in the notebook (only their totals are)")
    if isinstance(evicted, Mapping) and evicted.get("spans"):
        notes.append(f"{where}: {evicted['spans']:,} spans had left the buffer before the "
                     "view was saved")
    found = doc.get("spans")
    spans: list[Any] = found if isinstance(found, list) else []
    without = len([s for s in spans if isinstance(s, Mapping) and s.get("detail") == "omitted"])
    if without:
        notes.append(f"{where}: {without:,} spans were saved without their messages and "
                     "attributes (the document's size budget)")
    return notes


def read(path: str | os.PathLike[str]) -> Notebook:
    """The spans of every trace document in the notebook at ``path``.

    Raises :class:`TraceFileError` for a file that is not a regular file, not a notebook
    (JSON with a list of cells), or holds a span that cannot be read (the message names
    the cell and the span; nothing is loaded).
    """
    source = Path(path).expanduser()
    with _open_regular(source) as f:
        raw = f.read(MAX_NOTEBOOK_BYTES + 1)
    if len(raw) > MAX_NOTEBOOK_BYTES:
        raise TraceFileError(f"{source}: larger than {MAX_NOTEBOOK_BYTES >> 20:,} MiB; "
                             "not read")
    try:
        nb = json.loads(raw)
    except ValueError as exc:
        raise TraceFileError(f"{source}: not a notebook (not JSON: {exc})") from None
    if not isinstance(nb, Mapping) or not isinstance(nb.get("cells"), list):
        raise TraceFileError(f"{source}: not a notebook (no list of cells)")
    reads: list[_Read] = []
    notebook = Notebook()
    resource = Resource({"service.name": "llmtrace_nb"})
    for index, doc in _documents(nb):
        if not isinstance(doc, Mapping) or doc.get("version") != VERSION:
            version = doc.get("version") if isinstance(doc, Mapping) else None
            notebook.notes.append(f"cell {index + 1}: a trace document of version "
                                  f"{version!r} was skipped (this version reads {VERSION})")
            continue
        try:
            origin = pd.Timestamp(doc["start_time"]).value if doc.get("start_time") else 0
        except (ValueError, TypeError):
            raise TraceFileError(f"{source}, cell {index + 1}: start_time is not a time: "
                                 f"{str(doc.get('start_time'))[:40]!r}") from None
        spans = doc.get("spans")
        for number, doc_span in enumerate(spans if isinstance(spans, list) else (), 1):
            try:
                if not isinstance(doc_span, Mapping):
                    raise ValueError("not an object")
                reads.append(_span(doc, doc_span, origin, resource))
            except ValueError as exc:
                raise TraceFileError(f"{source}, cell {index + 1}, span {number}: "
                                     f"{exc}") from None
        notebook.documents += 1
        notebook.notes.extend(_notes(index, doc))
    loaded = _with_cells(reads)
    notebook.entries, notebook.cells = loaded.entries, loaded.cells
    return notebook
