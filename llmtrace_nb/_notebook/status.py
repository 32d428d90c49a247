"""What ``%llmtrace status`` prints and the line ``%load_ext`` prints."""

from __future__ import annotations

import pandas as pd

from .._capture.compat import openai_sends_trace_context
from . import session


def forward_text(sess: session.Session) -> str:
    forwarder = sess.forwarder
    config = forwarder.config if forwarder else None
    counts = forwarder.counts() if forwarder else None
    if config is None or counts is None:
        return "off"
    parts = [f"{counts[k]:,} {k}" for k in ("sent", "failed", "queued", "dropped")]
    if counts["filtered"]:
        parts.append(f"{counts['filtered']:,} left out by --only")
    return f"{config.describe()} · {', '.join(parts)}"


def status_text(sess: session.Session) -> str:
    collector = sess.collector
    df = sess.frames.spans(capture_content=sess.capture_content, shared=True)
    lines = [
        "llmtrace_nb " + ("collecting" if sess.active else "stopped"),
        f"  spans: {len(collector):,} kept (buffer {collector.max_spans:,}), "
        f"{collector.dropped:,} dropped",
        f"  cells traced: {df['cell'].nunique():,}",
        f"  instrumentations: {sess.describe_instrumentations()}",
        f"  providers collected: {sess.describe_providers()}",
        *(f"  price override: {line}" for line in sess.prices.describe_overrides()),
        f"  content: {'captured' if sess.capture_content else 'not captured'}",
        f"  auto: {'on' if sess.auto else 'off'}",
        f"  output: {sess.output}",
        f"  {traceparent_text(sess)}",
        f"  store: {store_line(sess)}",
        f"  forward: {forward_text(sess)}",
    ]
    if df.attrs.get("unpriced_models"):
        lines.append(f"  no price for: {', '.join(df.attrs['unpriced_models'])}")
    lines.extend(f"  note: {n}" for n in sess.notes)
    return "\n".join(lines)


def traceparent_text(sess: session.Session) -> str:
    """Whether OpenAI requests carry their trace context, as the instrumentation does it
    now (someone else who turned it on may have set it otherwise)."""
    sent = openai_sends_trace_context()
    if sent is None:
        return "traceparent: " + ("on" if sess.traceparent else "off") + \
            " (OpenAI is not instrumented)"
    return ("traceparent: on — OpenAI requests carry the call's trace context" if sent else
            "traceparent: off — OpenAI requests carry no trace context")


def status_line(sess: session.Session) -> str:
    """The one line printed by %load_ext."""
    forward = sess.forwarder.config if sess.forwarder else None
    where = f" and forwarded to {forward.describe()}" if forward else ""
    return (f"llmtrace_nb: spans kept in-process (up to {sess.collector.max_spans:,}){where} · "
            f"instrumented: {sess.describe_instrumentations()} · "
            f"providers: {sess.describe_providers()} · "
            f"content {'captured' if sess.capture_content else 'not captured'}")


def _size(n: float) -> str:
    unit = "bytes"
    for bigger in ("KiB", "MiB", "GiB"):
        if n < 1024:
            break
        n, unit = n / 1024, bigger
    return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"


def store_line(sess: session.Session) -> str:
    """Where the local store is and what this session wrote to it, in one line."""
    keeper = sess.keeper
    if keeper is None:
        return sess.store_problem or "off"
    writer = keeper.writer
    text = (f"{keeper.path} (session {keeper.session}, {writer.written:,} spans written"
            + (f", {writer.lost:,} lost" if writer.lost else "")
            + (f", {writer.failures:,} failed writes: {writer.last_error}"
               if writer.failures else "") + ")")
    return text


def store_text(sess: session.Session) -> str:
    """``%llmtrace store``: where, how big, which sessions, what retention keeps."""
    from .._keep.keeper import MAX_AGE_DAYS, MAX_BYTES

    keeper = sess.keeper
    if keeper is None:
        return f"llmtrace_nb: store {sess.store_problem or 'off'}"
    keeper.writer.flush()
    sessions = keeper.store.sessions()
    lines = [f"llmtrace_nb: store {store_line(sess)}",
             f"  size: {_size(keeper.store.size())}, {len(sessions):,} sessions, "
             f"{sum(s.spans for s in sessions):,} spans; keeps {MAX_AGE_DAYS} days, "
             f"at most {_size(MAX_BYTES)}",
             f"  {'session':>7}  {'started (UTC)':16}  {'spans':>9}  notebook"]
    for s in sessions[-20:]:
        started = pd.Timestamp(s.started_ns, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M")
        mark = " (this one)" if s.id == keeper.session else ""
        lines.append(f"  {s.id:>7}  {started:16}  {s.spans:>9,}  {s.notebook or '-'}{mark}")
    if len(sessions) > 20:
        lines.insert(3, f"  … {len(sessions) - 20:,} older sessions not listed")
    return "\n".join(lines)


def earlier_line(sess: session.Session) -> str | None:
    """The line ``%load_ext`` adds when this notebook's earlier sessions kept spans."""
    keeper = sess.keeper
    if keeper is None:
        return None
    earlier = keeper.earlier()
    if not earlier:
        return None
    latest = max(s.last_ns or s.started_ns for s in earlier)
    when = pd.Timestamp(latest, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
    n = sum(s.spans for s in earlier)
    return (f"llmtrace_nb: {n:,} span{'s' if n != 1 else ''} from this notebook's earlier "
            f"sessions (latest: {when}) — %llmtrace restore")
