"""Build real SDK spans shaped exactly like instrumentations emit them."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmtrace_nb._capture.collector import CellRef, SpanCollector
from llmtrace_nb._shape.frames import FrameBuilder
from llmtrace_nb._shape.pricing import PriceBook


class Recorder:
    """A provider with a collector and a frame builder, as a session has."""

    def __init__(self, max_spans: int = 100_000) -> None:
        self.collector = SpanCollector(max_spans)
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.collector)
        self.tracer = self.provider.get_tracer("tests")
        self.prices = PriceBook()
        self.frames = FrameBuilder(self.collector, self.prices)

    def span(self, name: str, attributes: dict[str, Any], *, events: list[tuple[str, int]] = (),
             start: int = 1_700_000_000_000_000_000, duration_ns: int = 500_000_000,
             error: str | None = None, cell: CellRef | None = None) -> None:
        """One finished span; ``events`` are (name, ns after start)."""
        self.collector.active_cell = cell
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes,
                                      start_time=start)
        self.collector.active_cell = None
        for event_name, offset in events:
            span.add_event(event_name, timestamp=start + offset)
        if error:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=start + duration_ns)


def openai_chat(model: str = "gpt-4o-mini", *, inp: int = 100, out: int = 20, cached: int = 0,
                reasoning: int | None = None, streaming: bool = False,
                response_model: str | None = None) -> dict[str, Any]:
    """Attributes of an `openai.chat` span from opentelemetry-instrumentation-openai 0.62."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.is_streaming": streaming,
        "gen_ai.openai.api_base": "http://127.0.0.1:1/v1/",
        "gen_ai.input.messages": json.dumps([
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]},
        ]),
        "gen_ai.response.model": response_model or model,
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        "gen_ai.usage.total_tokens": inp + out,
        "gen_ai.usage.cache_read.input_tokens": cached,
        "gen_ai.output.messages": json.dumps([
            {"role": "assistant", "parts": [{"type": "text", "content": "Paris."}],
             "finish_reason": "stop"},
        ]),
    }
    if reasoning is not None:
        attrs["gen_ai.usage.reasoning_tokens"] = reasoning
    return attrs
