"""What ``%llmtrace status`` prints and the line ``%load_ext`` prints."""

from __future__ import annotations

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
        f"  forward: {forward_text(sess)}",
    ]
    if df.attrs.get("unpriced_models"):
        lines.append(f"  no price for: {', '.join(df.attrs['unpriced_models'])}")
    lines.extend(f"  note: {n}" for n in sess.notes)
    return "\n".join(lines)


def status_line(sess: session.Session) -> str:
    """The one line printed by %load_ext."""
    forward = sess.forwarder.config if sess.forwarder else None
    where = f" and forwarded to {forward.describe()}" if forward else ""
    return (f"llmtrace_nb: spans kept in-process (up to {sess.collector.max_spans:,}){where} · "
            f"instrumented: {sess.describe_instrumentations()} · "
            f"providers: {sess.describe_providers()} · "
            f"content {'captured' if sess.capture_content else 'not captured'}")
