"""Trace documents built through the real pipeline (spans → frames → document), for views.

`python tests/docs.py OUT_DIR` writes them as JSON files, for the TypeScript tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from llmtrace_nb._capture.collector import CellRef
from llmtrace_nb._shape import document

from spans import Recorder, openai_chat

#: strings that must stay inert text in every view
XSS_PAYLOADS = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 2">',
    "javascript:window.__xss=3",
    '<a href="javascript:window.__xss=4">click</a>',
    "</style><script>window.__xss=5</script>",
    "</details></summary><script>window.__xss=6</script>",
    '"><svg onload="window.__xss=7">',
    "{{constructor.constructor('window.__xss=8')()}}",
    "]]></pre><iframe src=javascript:window.__xss=9>",
]
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def _tree(rec: Recorder, cell: CellRef, payload: str = "") -> None:
    """A small agent trace: retrieval, an agent step with a streamed call and a tool, an
    error, an unpriced model."""
    root = rec.tracer.start_span("rag-eval", attributes={"llmtrace.kind": "cell"},
                                 start_time=T0)
    cell.trace_id, cell.root_span_id = root.get_span_context().trace_id, \
        root.get_span_context().span_id
    rec.collector.active_cell = cell
    from opentelemetry import trace

    ctx = trace.set_span_in_context(root)
    rec.tracer.start_span("retrieve", context=ctx, start_time=T0 + 2 * MS,
                          attributes={"llmtrace.kind": "retrieval", "query": payload or "q"}
                          ).end(end_time=T0 + 40 * MS)
    step = rec.tracer.start_span("agent step 1", context=ctx, start_time=T0 + 45 * MS,
                                 attributes={"llmtrace.kind": "agent"})
    sctx = trace.set_span_in_context(step)
    attrs = openai_chat("gpt-4o-mini", inp=1204, out=180, cached=1024, streaming=True)
    if payload:
        attrs["gen_ai.input.messages"] = json.dumps([
            {"role": "system", "parts": [{"type": "text", "content": "You are helpful."}]},
            {"role": "user", "parts": [{"type": "text", "content": payload}]}])
        attrs["gen_ai.output.messages"] = json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": payload},
                                            {"type": "tool_call", "id": "call_1",
                                             "name": payload, "arguments": {"q": payload}}],
             "finish_reason": "tool_call"}])
    llm = rec.tracer.start_span("chat gpt-4o-mini", context=sctx, start_time=T0 + 50 * MS,
                                attributes=attrs)
    llm.add_event("gen_ai.content.completion.chunk", timestamp=T0 + 360 * MS)
    llm.end(end_time=T0 + 1470 * MS)
    rec.tracer.start_span("execute_tool search", context=sctx, start_time=T0 + 1480 * MS,
                          attributes={"gen_ai.operation.name": "execute_tool",
                                      "gen_ai.tool.name": "search",
                                      "gen_ai.tool.call.arguments": json.dumps({"q": payload
                                                                                 or "x"}),
                                      "gen_ai.tool.call.result": payload or "3 hits"}
                          ).end(end_time=T0 + 1692 * MS)
    step.end(end_time=T0 + 2150 * MS)
    from opentelemetry.trace import Status, StatusCode

    failed = rec.tracer.start_span("chat gpt-4o", context=ctx, start_time=T0 + 2200 * MS,
                                   attributes=openai_chat("gpt-4o", inp=50, out=0))
    failed.set_attribute("error.type", "RateLimitError")
    failed.set_status(Status(StatusCode.ERROR, "429"))
    failed.end(end_time=T0 + 2300 * MS)
    rec.tracer.start_span("chat house-model", context=ctx, start_time=T0 + 2400 * MS,
                          attributes=openai_chat("house-model-7b", inp=10, out=5)
                          ).end(end_time=T0 + 2600 * MS)
    rec.collector.active_cell = None
    root.end(end_time=T0 + 4820 * MS)


def _doc(rec: Recorder, cell: CellRef, **kw: Any) -> dict[str, Any]:
    df = rec.frames.spans()
    return document.build(df, name=cell.name, cell=cell.number, **kw)


def agent_doc(output: str = "compact") -> dict[str, Any]:
    rec, cell = Recorder(), CellRef(number=12, name="rag-eval")
    _tree(rec, cell)
    return _doc(rec, cell, output=output)


def xss_doc() -> dict[str, Any]:
    rec, cell = Recorder(), CellRef(number=13, name=XSS_PAYLOADS[0])
    _tree(rec, cell, payload="\n".join(XSS_PAYLOADS))
    doc = _doc(rec, cell)
    for i, payload in enumerate(XSS_PAYLOADS):  # payloads in names and kinds' neighbours too
        doc["spans"][i % len(doc["spans"])]["name"] = payload
    return doc


def big_doc(n: int = 10_000) -> dict[str, Any]:
    """A cell with n spans: 1 root, agents of 9 LLM calls each, long messages."""
    rec, cell = Recorder(max_spans=n + 10), CellRef(number=14, name=f"{n:,} spans")
    from opentelemetry import trace

    root = rec.tracer.start_span("big", attributes={"llmtrace.kind": "cell"}, start_time=T0)
    ctx = trace.set_span_in_context(root)
    made = 1
    t = T0
    while made < n:
        agent = rec.tracer.start_span("agent", context=ctx, start_time=t,
                                      attributes={"llmtrace.kind": "agent"})
        actx = trace.set_span_in_context(agent)
        made += 1
        for _ in range(min(9, n - made)):
            attrs = openai_chat(inp=500, out=100)
            attrs["gen_ai.input.messages"] = json.dumps([{"role": "user", "parts": [
                {"type": "text", "content": "lorem ipsum " * 400}]}])
            rec.tracer.start_span("openai.chat", context=actx, start_time=t,
                                  attributes=attrs).end(end_time=t + 5 * MS)
            t += 5 * MS
            made += 1
        agent.end(end_time=t)
    root.end(end_time=t + MS)
    return _doc(rec, cell)


def framework_doc() -> dict[str, Any]:
    """A framework's chat span around the client's span of the same call (pydantic-ai's
    shape): one call, the inner row a duplicate."""
    rec, cell = Recorder(), CellRef(number=15, name="agent run")
    from opentelemetry import trace

    framework = rec.provider.get_tracer("pydantic-ai")
    client = rec.provider.get_tracer("opentelemetry.instrumentation.openai.v1")
    root = rec.tracer.start_span("agent run", attributes={"llmtrace.kind": "cell"},
                                 start_time=T0)
    chat = framework.start_span("chat gpt-4o-mini", context=trace.set_span_in_context(root),
                                start_time=T0 + MS, attributes={
                                    "gen_ai.operation.name": "chat",
                                    "gen_ai.request.model": "gpt-4o-mini",
                                    "gen_ai.response.id": "chatcmpl-1",
                                    "gen_ai.usage.input_tokens": 100,
                                    "gen_ai.usage.output_tokens": 20})
    client.start_span("openai.chat", context=trace.set_span_in_context(chat),
                      start_time=T0 + 2 * MS, attributes=openai_chat(
                          response_model="gpt-4o-mini-2024-07-18", cached=40)
                      ).end(end_time=T0 + 90 * MS)
    chat.end(end_time=T0 + 100 * MS)
    root.end(end_time=T0 + 120 * MS)
    return _doc(rec, cell)


def empty_doc() -> dict[str, Any]:
    return document.build(Recorder().frames.spans(), name="empty cell", cell=1)


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, make in [("agent", agent_doc), ("xss", xss_doc), ("empty", empty_doc),
                       ("big", big_doc), ("framework", framework_doc)]:
        (out / f"{name}.json").write_text(document.to_json(make()), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "build/docs")


#: what GitHub's notebook view removes from an HTML output (its sanitizer's rules for them)
STRIPPED_ELEMENTS = ("style", "script", "iframe")
STRIPPED_ATTRIBUTES = ("style", "class", "id")


def stripped(fragment: str) -> str:
    """An HTML output as GitHub shows it: no style sheet, no script, no frame, and no
    style, class, id or event attribute."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(fragment, "html.parser")
    for element in soup.find_all(STRIPPED_ELEMENTS):
        element.decompose()
    for element in soup.find_all(True):
        for attr in list(element.attrs):
            if attr in STRIPPED_ATTRIBUTES or attr.lower().startswith("on"):
                del element[attr]
    return str(soup)
