"""Content capture off reaches every instrumentation and every exit, checked on the bytes.

README promises: with content capture off, no prompt or completion text is recorded,
shown, saved or forwarded — whichever way it was turned off (either environment variable
when the kernel starts, `%llmtrace content off`, `enable(capture_content=False)`) and
whichever instrumentation recorded the text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from otlp_receiver import receiver
from test_provider import run_py

PROMPT = "PROMPT-MARKER what is the capital of France"
OTHER = "OTHER-MARKER recorded by another instrumentation"

CELLS = f"""
import llmtrace_nb
from opentelemetry import trace
with capture_output():
    ip.run_line_magic("load_ext", "llmtrace_nb")
    {{switch}}
    ip.run_line_magic("llmtrace", "forward " + URL)
out = cell("%%trace\\n"
     "client.chat.completions.create(model='gpt-4o-mini', messages=[\\n"
     "    {{'role': 'user', 'content': {PROMPT!r}}}])\\n"
     "from opentelemetry import trace\\n"
     "with trace.get_tracer('other').start_as_current_span('step', attributes={{\\n"
     "    'input.value': {OTHER!r}, 'openinference.span.kind': 'CHAIN'}}): pass")
import time
from llmtrace_nb._notebook import session
deadline = time.monotonic() + 15
while (session.require().forwarder.counts() or {{}}).get("sent", 0) < 3 and \\
        time.monotonic() < deadline:
    time.sleep(0.05)
df = llmtrace_nb.spans_df()
llmtrace_nb.save(PATH)
view = llmtrace_nb.view()._repr_mimebundle_()
print(json.dumps({{"frames": repr(df.to_dict("records")), "view": json.dumps(view),
                  "status": llmtrace_nb.status(), "file": open(PATH).read()}}))
"""

WAYS = {
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false": (
        {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"}, "pass"),
    "TRACELOOP_TRACE_CONTENT=false": ({"TRACELOOP_TRACE_CONTENT": "false"}, "pass"),
    "%llmtrace content off": ({}, 'ip.run_line_magic("llmtrace", "content off")'),
    "enable(capture_content=False)": ({}, "llmtrace_nb.enable(capture_content=False)"),
}


@pytest.mark.parametrize("way", list(WAYS))
def test_content_off_leaves_no_text_in_any_exit(way: str, tmp_path: Path) -> None:
    env, switch = WAYS[way]
    with receiver() as rx:
        body = (f"URL = {rx.url!r}\nPATH = {str(tmp_path / 'spans.jsonl')!r}\n"
                + CELLS.replace("{switch}", switch))
        out: dict[str, Any] = run_py(body, env)
        sent = b"".join(rx.raw)
    assert "content: not captured" in out["status"]
    assert len(rx.spans) >= 3, out["status"]  # the spans went, without their text
    for marker in ("PROMPT-MARKER", "OTHER-MARKER"):
        assert marker.encode() not in sent, f"{marker} forwarded"
        for exit_ in ("frames", "view", "file"):
            assert marker not in out[exit_], f"{marker} in {exit_}"
    # what is not content still goes: the model and the token counts
    assert b"gpt-4o-mini" in sent and json.dumps("gen_ai.usage.input_tokens")[1:-1].encode(
    ) in sent
