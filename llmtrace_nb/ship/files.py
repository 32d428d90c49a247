"""Files: the session's spans as OTLP JSON lines, and back, losslessly.

Secrets are scrubbed on the way into the file, as on the way to a backend; with content
capture off, prompt and completion text is left out too.

The format is the OpenTelemetry Collector file exporter's: one
``ExportTraceServiceRequest`` as OTLP/JSON per line (ids in hex, enums as integers), so
a file written here can be replayed to any OTLP backend and a Collector's file can be
loaded here. Encoding goes through ``opentelemetry-exporter-otlp-proto-common`` (the
exporters' own encoder); decoding rebuilds SDK ``ReadableSpan`` objects with the same
ids, parent links, times to the nanosecond, typed attributes, events, links, status,
resource and scope.

Spans of auto-mode cells have no cell root in their trace, so their cell travels in two
extra attributes (``llmtrace.cell.number`` / ``llmtrace.cell.name``) that loading
removes again.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from ..collector import CellRef
from .spans import replace_span

SPANS_PER_LINE = 1_000
CELL_NUMBER = "llmtrace.cell.number"
CELL_NAME = "llmtrace.cell.name"
CELL_KIND = "llmtrace.kind"
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_KINDS = {
    trace_pb2.Span.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    trace_pb2.Span.SPAN_KIND_SERVER: SpanKind.SERVER,
    trace_pb2.Span.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    trace_pb2.Span.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    trace_pb2.Span.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
    trace_pb2.Span.SPAN_KIND_UNSPECIFIED: SpanKind.INTERNAL,
}
_STATUS = {0: StatusCode.UNSET, 1: StatusCode.OK, 2: StatusCode.ERROR}
_REMOTE_PARENT = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


class TraceFileError(ValueError):
    """A trace file that cannot be read; names the file and the line."""


# -- writing ------------------------------------------------------------------------------


def _with_cell(span: ReadableSpan, cell: CellRef | None,
               cell_traces: set[int]) -> ReadableSpan:
    """The span, carrying its cell when its trace has no cell root to carry it."""
    if cell is None or cell.number is None or span.context is None \
            or span.context.trace_id in cell_traces:
        return span
    return replace_span(span, attributes={**(span.attributes or {}), CELL_NUMBER: cell.number,
                                          CELL_NAME: cell.name})


def _hex_ids(node: Any) -> None:
    """OTLP/JSON writes ids in hex where the protobuf JSON mapping writes base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def encode_lines(entries: Sequence[tuple[ReadableSpan, CellRef | None]],
                 redact: str = "none") -> Iterator[str]:
    """OTLP/JSON lines for the entries of a collector snapshot.

    Secrets are scrubbed as for forwarding; ``redact`` treats content as forwarding does.
    """
    from .policy import clean_span

    cell_traces = {s.context.trace_id for s, _ in entries
                   if s.context is not None and (s.attributes or {}).get(CELL_KIND) == "cell"}
    for i in range(0, len(entries), SPANS_PER_LINE):
        chunk = [clean_span(_with_cell(s, c, cell_traces), redact)
                 for s, c in entries[i:i + SPANS_PER_LINE]]
        data = json_format.MessageToDict(encode_spans(chunk), use_integers_for_enums=True)
        _hex_ids(data)
        yield json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def save(path: str | os.PathLike[str],
         entries: Sequence[tuple[ReadableSpan, CellRef | None]], redact: str = "none") -> int:
    """Write the entries to ``path`` (replacing it); returns the number of spans written.

    The file is written next to its destination and renamed into place, so a failure
    halfway never leaves a truncated file behind.
    """
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a directory; give a file name")
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", errors="surrogatepass") as out:
            for line in encode_lines(entries, redact):
                out.write(line + "\n")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return len(entries)


# -- reading ------------------------------------------------------------------------------


def _base64_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str) and value:
                node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            else:
                _base64_ids(value)
    elif isinstance(node, list):
        for item in node:
            _base64_ids(item)


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(_value(x) for x in v.array_value.values)
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


def _attributes(kvs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def _int_id(raw: bytes, width: int, what: str) -> int:
    if len(raw) != width:
        raise ValueError(f"{what} must be {width} bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")


@dataclass
class Loaded:
    """What a file held: spans with their cells, ready for a collector."""

    entries: list[tuple[ReadableSpan, CellRef | None]] = field(default_factory=list)
    cells: list[CellRef] = field(default_factory=list)


def _decode(request: ExportTraceServiceRequest, out: list[tuple[ReadableSpan, int | None,
                                                                str | None]]) -> None:
    for rs in request.resource_spans:
        resource = Resource(_attributes(rs.resource.attributes), rs.schema_url or None)
        for ss in rs.scope_spans:
            scope = InstrumentationScope(
                ss.scope.name, ss.scope.version, ss.schema_url,
                _attributes(ss.scope.attributes) or None)
            for s in ss.spans:
                trace_id = _int_id(s.trace_id, 16, "traceId")
                state = TraceState.from_header([s.trace_state]) if s.trace_state else None
                context = SpanContext(trace_id, _int_id(s.span_id, 8, "spanId"), False,
                                      TraceFlags(TraceFlags.SAMPLED), state)
                parent = None
                if s.parent_span_id:
                    parent = SpanContext(trace_id, _int_id(s.parent_span_id, 8, "parentSpanId"),
                                         bool(s.flags & _REMOTE_PARENT),
                                         TraceFlags(TraceFlags.SAMPLED))
                attrs = _attributes(s.attributes)
                if attrs.get(CELL_KIND) == "cell":  # a cell root: these are its own
                    number, name = attrs.get(CELL_NUMBER), attrs.get(CELL_NAME)
                else:  # added by save() to carry an auto-mode cell: take them off again
                    number, name = attrs.pop(CELL_NUMBER, None), attrs.pop(CELL_NAME, None)
                events = [Event(e.name, _attributes(e.attributes), e.time_unix_nano)
                          for e in s.events]
                links = [Link(SpanContext(_int_id(lk.trace_id, 16, "link traceId"),
                                          _int_id(lk.span_id, 8, "link spanId"), False),
                              _attributes(lk.attributes)) for lk in s.links]
                status = Status(_STATUS.get(s.status.code, StatusCode.UNSET),
                                s.status.message or None)
                span = ReadableSpan(
                    name=s.name, context=context, parent=parent, resource=resource,
                    attributes=attrs, events=events, links=links,
                    kind=_KINDS.get(s.kind, SpanKind.INTERNAL), instrumentation_scope=scope,
                    status=status, start_time=s.start_time_unix_nano,
                    end_time=s.end_time_unix_nano,
                )
                out.append((span, number if isinstance(number, int) else None, name))


def read_lines(lines: Iterable[str], source: str = "<lines>") -> Loaded:
    """Parse OTLP/JSON lines; raises :class:`TraceFileError` naming the bad line."""
    raw: list[tuple[ReadableSpan, int | None, str | None]] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or "resourceSpans" not in data:
                raise ValueError("not an OTLP traces export (no resourceSpans)")
            _base64_ids(data)
            request = json_format.ParseDict(data, ExportTraceServiceRequest())
            _decode(request, raw)
        except (ValueError, TypeError, json_format.ParseError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TraceFileError(f"{source}, line {lineno}: {reason}") from None
    return _with_cells(raw)


def _with_cells(raw: list[tuple[ReadableSpan, int | None, str | None]]) -> Loaded:
    """Give spans back their cells: through their trace's cell root, else their stamp."""
    loaded = Loaded()
    by_trace: dict[int, CellRef] = {}
    by_stamp: dict[tuple[int, str | None], CellRef] = {}
    for span, number, name in raw:
        if (span.attributes or {}).get(CELL_KIND) == "cell" and span.context is not None:
            tags = {k[len("llmtrace.tag."):]: str(v) for k, v in (span.attributes or {}).items()
                    if k.startswith("llmtrace.tag.")}
            ref = CellRef(number=number, name=name or span.name, tags=tags,
                          trace_id=span.context.trace_id, root_span_id=span.context.span_id,
                          start_ns=span.start_time, end_ns=span.end_time)
            by_trace[span.context.trace_id] = ref
            loaded.cells.append(ref)
    for span, number, name in raw:
        cell = by_trace.get(span.context.trace_id) if span.context is not None else None
        if cell is None and number is not None:
            key = (number, name)
            if key not in by_stamp:
                by_stamp[key] = CellRef(number=number, name=name or f"cell [{number}]",
                                        start_ns=span.start_time, end_ns=span.end_time)
                loaded.cells.append(by_stamp[key])
            cell = by_stamp[key]
        loaded.entries.append((span, cell))
    return loaded


def load(path: str | os.PathLike[str]) -> Loaded:
    source = Path(path).expanduser()
    try:
        with source.open(encoding="utf-8") as f:
            return read_lines(f, str(source))
    except UnicodeDecodeError as exc:
        raise TraceFileError(f"{source}: not a UTF-8 text file ({exc.reason})") from None
