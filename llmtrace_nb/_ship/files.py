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

Hostile files: only regular files are read (a FIFO, device, socket or directory is
refused before anything is read), a line holds at most ``MAX_LINE_BYTES`` (64 MiB; a
longer one is an error, read no further than the bound), and any line that cannot be read
— not UTF-8, not JSON, nested too deeply, a bad id or value — is an error naming the line
and, where there is one, the field; nothing of such a file is loaded. Cell attributes of
the wrong type (``llmtrace.cell.name`` not text, ``llmtrace.cell.number`` not a count,
a ``llmtrace.tag.*`` that is a list, map or bytes) are not errors: they are left out of
the cell, named in the span's ``llmtrace.unreadable`` attribute, and the cell falls back
(to the root span's name, to no number).

Saving replaces the file atomically (temp file + rename), keeps the mode, owner and group
of the file it replaces (group permissions are dropped if the group cannot be kept),
creates new files 0600, and never lets the temp file be more readable than the result.
A symlink is written through (the link stays, the file it names is replaced), except one
planted by another user in a shared sticky directory, which is refused.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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

from .._capture.collector import CellRef
from .._capture.keys import CELL_NAME, CELL_NUMBER, TAG_PREFIX, UNREADABLE
from .._capture.keys import KIND as CELL_KIND
from .spans import replace_span

SPANS_PER_LINE = 1_000
#: The longest line read or written, in bytes (a longer one is an error); saving splits
#: its lines to stay under it.
MAX_LINE_BYTES = 64 << 20
_READ_CHUNK = 1 << 20
_MAX_TIME = (1 << 63) - 1  # the last nanosecond a datetime64[ns] holds (2262-04-11)
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
    """A trace file that cannot be read or written; names the file, and the line (and the
    field) when the trouble is in one."""


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n:,} bytes"


def _not_regular(mode: int) -> str | None:
    """What a file that is not a regular file is, for an error message."""
    if stat.S_ISREG(mode):
        return None
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "a special file"


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
        yield from _bounded_lines(chunk)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _bounded_lines(chunk: list[ReadableSpan]) -> Iterator[str]:
    """The chunk as one line, or split in halves until each line fits ``MAX_LINE_BYTES``."""
    data = json_format.MessageToDict(encode_spans(chunk), use_integers_for_enums=True)
    _hex_ids(data)
    line = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    del data
    size = _utf8_len(line)
    if size <= MAX_LINE_BYTES:
        yield line
    elif len(chunk) == 1:
        raise TraceFileError(
            f"span {chunk[0].name!r} takes {size:,} bytes as OTLP JSON, more than a line may "
            f"hold ({_size(MAX_LINE_BYTES)}); nothing was written")
    else:
        del line
        half = len(chunk) // 2
        yield from _bounded_lines(chunk[:half])
        yield from _bounded_lines(chunk[half:])


def save(path: str | os.PathLike[str],
         entries: Sequence[tuple[ReadableSpan, CellRef | None]], redact: str = "none") -> int:
    """Write the entries to ``path`` (replacing it); returns the number of spans written.

    The file is written to a temp file next to its destination and renamed into place, so
    a failure halfway never leaves a truncated file behind. A file replaced keeps its mode
    (and owner and group where they can be kept); a new file is made 0600. The temp file
    is never more readable than the result. A symlink is written through: the link stays
    and the file it names is replaced.
    """
    target = _save_target(Path(path).expanduser())
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise IsADirectoryError(f"{target} is a directory; give a file name")
    if existing is not None and (what := _not_regular(existing.st_mode)):
        raise TraceFileError(f"{target}: is {what}, not a regular file; give a file name")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp",
                                    dir=target.parent)  # 0600, O_EXCL: no planted temp
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            mode = 0o600 if existing is None else _keep_owner(out.fileno(), existing)
            _chmod(out.fileno(), mode & 0o600)  # while written: at most the result's bits
            for line in encode_lines(entries, redact):
                out.write(line.encode("utf-8"))
                out.write(b"\n")
            out.flush()
            _chmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return len(entries)


def _chmod(fd: int, mode: int) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)


def _keep_owner(fd: int, old: os.stat_result) -> int:
    """Give the temp file the replaced file's owner and group where allowed; the mode to
    keep (without group permissions when the group could not be kept)."""
    mode = old.st_mode & 0o777
    if not hasattr(os, "fchown"):
        return mode
    new = os.fstat(fd)
    if new.st_uid != old.st_uid:
        try:
            os.fchown(fd, old.st_uid, old.st_gid)  # only root may: keeps a user's file theirs
            return mode
        except OSError:
            pass
    if new.st_gid != old.st_gid:
        try:
            os.fchown(fd, -1, old.st_gid)
        except OSError:  # not a member: the old group's rights must not go to ours
            mode &= ~0o070
    return mode


def _save_target(path: Path) -> Path:
    """The file a save replaces: ``path``, or the file its symlink(s) name."""
    for _ in range(40):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path
        if not stat.S_ISLNK(st.st_mode):
            return path
        _check_link(path, st)
        path = path.parent / os.readlink(path)
    raise OSError(errno.ELOOP, "too many levels of symbolic links", str(path))


def _check_link(link: Path, st: os.stat_result) -> None:
    """Refuse a symlink another user planted in a shared sticky directory (/tmp), as the
    kernel's protected_symlinks does: writing through it would write where they chose."""
    if not hasattr(os, "geteuid") or st.st_uid == os.geteuid():
        return
    parent = os.stat(link.parent)
    shared = parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH
    if shared and st.st_uid != parent.st_uid:
        raise TraceFileError(f"{link}: a symlink owned by another user in a shared directory; "
                             "not writing through it")


# -- reading ------------------------------------------------------------------------------

_SPAN_IDS = (("traceId", 16, True), ("spanId", 8, True), ("parentSpanId", 8, False))
_LINK_IDS = (("traceId", 16, True), ("spanId", 8, True))
_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"),
               (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"))


class _LineError(ValueError):
    """What is wrong with one line (the caller adds the file and line number)."""


def _items(node: Any, key: str) -> Iterator[tuple[int, Any]]:
    value = node.get(key) if isinstance(node, dict) else None
    return enumerate(value) if isinstance(value, list) else iter(())


def _prepare(data: dict[str, Any]) -> None:
    """Hex ids (OTLP/JSON) to the base64 the protobuf JSON mapping reads, checking each,
    and times checked to be ones a DataFrame can hold."""
    for i, rs in _items(data, "resourceSpans"):
        for j, ss in _items(rs, "scopeSpans"):
            for k, span in _items(ss, "spans"):
                where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                _check_ids(span, _SPAN_IDS, where)
                _check_time(span, "startTimeUnixNano", where)
                _check_time(span, "endTimeUnixNano", where)
                for m, event in _items(span, "events"):
                    _check_time(event, "timeUnixNano", f"{where}.events[{m}]")
                for m, link in _items(span, "links"):
                    _check_ids(link, _LINK_IDS, f"{where}.links[{m}]")


def _check_time(node: Any, key: str, where: str) -> None:
    """OTLP times are uint64, but nanoseconds past 2262 fit no datetime64 (nor pandas)."""
    value = node.get(key) if isinstance(node, dict) else None
    if isinstance(value, str) and value.isdigit() and len(value) < 40:
        value = int(value)
    if isinstance(value, int) and value > _MAX_TIME:
        raise _LineError(f"{where}.{key}: {value} ns is past the year 2262, no time to read")


def _brief(value: Any) -> str:
    """A bad value, shown short (never the whole of a big one)."""
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "an object"
    return json.dumps(value[:40] if isinstance(value, str) else value)


def _check_ids(node: Any, fields: tuple[tuple[str, int, bool], ...], where: str) -> None:
    if not isinstance(node, dict):  # protobuf would read a null as an empty span
        raise _LineError(f"{where}: not an object ({_brief(node)})")
    for key, width, required in fields:
        value = node.get(key)
        if value is None or value == "":
            if required:
                raise _LineError(f"{where}.{key}: missing")
            continue
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            raw = None
        if raw is None:
            raise _LineError(f"{where}.{key}: not a hex id ({_brief(value)})")
        if len(raw) != width:
            raise _LineError(f"{where}.{key}: must be {width} bytes, got {len(raw)}")
        if not any(raw):
            raise _LineError(f"{where}.{key}: all zeros, which is no id")
        node[key] = base64.b64encode(raw).decode("ascii")


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


def _int_id(raw: bytes, width: int) -> int:
    if len(raw) != width or not any(raw):  # checked with the field named: a safety net
        raise ValueError(f"an id of {len(raw)} bytes where {width} are needed")
    return int.from_bytes(raw, "big")


@dataclass
class Loaded:
    """What a file held: spans with their cells, ready for a collector."""

    entries: list[tuple[ReadableSpan, CellRef | None]] = field(default_factory=list)
    cells: list[CellRef] = field(default_factory=list)


@dataclass
class _Read:
    """A span as read, with the cell it names (root attributes or auto-mode stamp)."""

    span: ReadableSpan
    number: int | None
    name: str | None
    tags: dict[str, str] | None  # a cell root's tags; None for other spans


def _mark_unreadable(attrs: dict[str, Any], keys: list[str]) -> None:
    """Name the attributes that could not be read, as frames do (``llmtrace.unreadable``)."""
    old = attrs.get(UNREADABLE)
    names = [k for k in old.split(",") if k] if isinstance(old, str) else []
    attrs[UNREADABLE] = ",".join(names + [k for k in keys if k not in names])


def _cell_of(attrs: dict[str, Any]) -> tuple[int | None, str | None, dict[str, str] | None]:
    """The cell a span's attributes name, values of the wrong type left out and named."""
    root = attrs.get(CELL_KIND) == "cell"
    if root:  # a cell root: these are its own
        number, name = attrs.get(CELL_NUMBER), attrs.get(CELL_NAME)
    else:  # added by save() to carry an auto-mode cell: take them off again
        number, name = attrs.pop(CELL_NUMBER, None), attrs.pop(CELL_NAME, None)
    bad = []
    if number is not None and (type(number) is not int or number < 0):
        bad.append(CELL_NUMBER)
        number = None
    if name is not None and not isinstance(name, str):
        bad.append(CELL_NAME)
        name = None
    tags: dict[str, str] | None = None
    if root:
        tags = {}
        for key, value in attrs.items():
            if key.startswith(TAG_PREFIX):
                if isinstance(value, str | int | float):  # bool too: written as text
                    tags[key[len(TAG_PREFIX):]] = str(value)
                else:
                    bad.append(key)
    if bad:
        _mark_unreadable(attrs, bad)
    return number, name, tags


def _decode(request: ExportTraceServiceRequest, out: list[_Read]) -> None:
    for rs in request.resource_spans:
        resource = Resource(_attributes(rs.resource.attributes), rs.schema_url or None)
        for ss in rs.scope_spans:
            scope = InstrumentationScope(
                ss.scope.name, ss.scope.version, ss.schema_url,
                _attributes(ss.scope.attributes) or None)
            for s in ss.spans:
                trace_id = _int_id(s.trace_id, 16)
                state = TraceState.from_header([s.trace_state]) if s.trace_state else None
                context = SpanContext(trace_id, _int_id(s.span_id, 8), False,
                                      TraceFlags(TraceFlags.SAMPLED), state)
                parent = None
                if s.parent_span_id:
                    parent = SpanContext(trace_id, _int_id(s.parent_span_id, 8),
                                         bool(s.flags & _REMOTE_PARENT),
                                         TraceFlags(TraceFlags.SAMPLED))
                attrs = _attributes(s.attributes)
                number, name, tags = _cell_of(attrs)
                events = [Event(e.name, _attributes(e.attributes), e.time_unix_nano)
                          for e in s.events]
                links = [Link(SpanContext(_int_id(lk.trace_id, 16), _int_id(lk.span_id, 8), False),
                              _attributes(lk.attributes)) for lk in s.links]
                code = _STATUS.get(s.status.code, StatusCode.UNSET)
                # a message only goes with an error (the SDK drops any other, warning)
                status = Status(code, (s.status.message or None)
                                if code is StatusCode.ERROR else None)
                span = ReadableSpan(
                    name=s.name, context=context, parent=parent, resource=resource,
                    attributes=attrs, events=events, links=links,
                    kind=_KINDS.get(s.kind, SpanKind.INTERNAL), instrumentation_scope=scope,
                    status=status, start_time=s.start_time_unix_nano,
                    end_time=s.end_time_unix_nano,
                )
                out.append(_Read(span, number, name, tags))


_FAILED = re.compile(r"Failed to parse (\w+) field: ")
_AT = re.compile(r' at "?(?:ExportTraceServiceRequest|Span)\.?([^"\s]*)"?\.*$')


def _proto_reason(exc: json_format.ParseError, where: str = "") -> str:
    """A protobuf ParseError as 'field.path: what', not a chain of 'Failed to parse'."""
    message = str(exc).splitlines()[0] if str(exc) else "cannot be read"
    names = []
    while (m := _FAILED.match(message)) is not None:
        names.append(m.group(1))
        message = message[m.end():]
    path = ".".join(names if len(names) <= 8 else [*names[:5], "…", *names[-2:]])
    if (at := _AT.search(message)) is not None:
        path, message = at.group(1).rstrip(".") or path, message[:at.start()]
    path = ".".join(p for p in (where, path) if p)
    message = message.rstrip(".")
    return f"{path}: {message}" if path else message


def _span_at_fault(data: dict[str, Any]) -> str | None:
    """After a parse error: the first span that does not parse, with its index and why
    (the error of the whole request names the field, but not which span)."""
    for i, rs in _items(data, "resourceSpans"):
        for j, ss in _items(rs, "scopeSpans"):
            for k, span in _items(ss, "spans"):
                try:
                    json_format.ParseDict(span, trace_pb2.Span())
                except json_format.ParseError as exc:
                    return _proto_reason(exc, f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]")
    return None


def _parse_line(raw: str | bytes, lineno: int, out: list[_Read]) -> None:
    """One line into ``out``; raises what is wrong with it."""
    if isinstance(raw, bytes):
        view = memoryview(raw)
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte order mark
            view = view[3:]
        try:
            text = str(view, "utf-8")
        except UnicodeDecodeError as exc:
            raise _LineError(f"not UTF-8 text (byte 0x{view[exc.start]:02x} at column "
                             f"{exc.start + 1})") from None
        finally:
            view.release()
    else:
        text = raw
    if not text or text.isspace():
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _LineError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    del text
    if not isinstance(data, dict) or "resourceSpans" not in data:
        raise _LineError("not an OTLP traces export (no resourceSpans)")
    _prepare(data)
    try:
        request = json_format.ParseDict(data, ExportTraceServiceRequest())
    except json_format.ParseError as exc:
        raise _LineError(_span_at_fault(data) or _proto_reason(exc)) from None
    del data
    _decode(request, out)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "too large to read in the memory there is"
    text = str(exc).splitlines()[0] if str(exc) else ""
    if not isinstance(exc, _LineError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def read_lines(lines: Iterable[str | bytes], source: str = "<lines>") -> Loaded:
    """Parse OTLP/JSON lines (text, or UTF-8 bytes); raises :class:`TraceFileError` naming
    the bad line (and field), having loaded nothing."""
    raw: list[_Read] = []
    for lineno, line in enumerate(lines, 1):
        try:
            _parse_line(line, lineno, raw)
        except Exception as exc:  # whatever a line holds: an error naming it, no traceback
            raise TraceFileError(f"{source}, line {lineno}: {_reason(exc)}") from None
    return _with_cells(raw)


def _with_cells(raw: list[_Read]) -> Loaded:
    """Give spans back their cells: through their trace's cell root, else their stamp."""
    loaded = Loaded()
    by_trace: dict[int, CellRef] = {}
    by_stamp: dict[tuple[int, str | None], CellRef] = {}
    for r in raw:
        if r.tags is not None and r.span.context is not None:
            ref = CellRef(number=r.number,
                          name=r.name or r.span.name or
                          (f"cell [{r.number}]" if r.number is not None else "cell"),
                          tags=r.tags, trace_id=r.span.context.trace_id,
                          root_span_id=r.span.context.span_id,
                          start_ns=r.span.start_time, end_ns=r.span.end_time)
            by_trace[r.span.context.trace_id] = ref
            loaded.cells.append(ref)
    for r in raw:
        span, number, name = r.span, r.number, r.name
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


def _open_regular(source: Path) -> io.BufferedReader:
    """The file, opened for reading if it is a regular file; never blocks on a FIFO and
    never opens a device (its type is checked before opening and again on what opened)."""
    what = _not_regular(os.stat(source).st_mode)
    if what is not None:
        raise TraceFileError(f"{source}: is {what}, not a regular file")
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_BINARY", 0))
    fd = os.open(source, flags)
    try:
        what = _not_regular(os.fstat(fd).st_mode)  # replaced between stat and open
        if what is not None:
            raise TraceFileError(f"{source}: is {what}, not a regular file")
        if flags & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _bounded_lines_of(f: IO[bytes], source: Path) -> Iterator[bytes]:
    """The file's lines as bytes, each read no further than ``MAX_LINE_BYTES``."""
    bound = MAX_LINE_BYTES
    lineno = 0
    while True:
        lineno += 1
        pieces: list[bytes] = []
        size = 0
        while True:
            piece = f.readline(min(_READ_CHUNK, bound + 1 - size))
            if not piece:
                break
            pieces.append(piece)
            size += len(piece)
            if piece.endswith(b"\n"):
                break
            if size > bound:
                pieces.clear()
                raise TraceFileError(f"{source}, line {lineno}: longer than {_size(bound)}, "
                                     "the most a line may hold")
        if not pieces:
            return
        yield pieces[0] if len(pieces) == 1 else b"".join(pieces)


def load(path: str | os.PathLike[str]) -> Loaded:
    """Read a file of OTLP JSON lines; raises :class:`TraceFileError` naming the file and
    the line (and the field) if any of it cannot be read, and then nothing is loaded."""
    source = Path(path).expanduser()
    with _open_regular(source) as f:
        head = f.peek(8)[:8]
        for magic, kind in _COMPRESSED:
            if head.startswith(magic):
                raise TraceFileError(f"{source}, line 1: {kind}-compressed data, not text; "
                                     "decompress it first")
        return read_lines(_bounded_lines_of(f, source), str(source))
