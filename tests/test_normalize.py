"""The columnar normalizer (used by the DataFrames) agrees with semconv, span by span.

semconv reads one span at a time and is the reference; normalize.py reads whole groups of
spans per key set with fast paths. Any batch — mixed key sets, unreadable values, the
OpenInference fallbacks — must give the same fields, kinds and messages.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmtrace_nb._read import semconv
from llmtrace_nb._read.normalize import normalize

# Keys from semconv's own tables (so a dialect added there is drawn here too), an indexed
# key under every message prefix, and a key no table knows.
KEYS = sorted({k for keys in semconv.FIELD_KEYS.values() for k in keys}
              | {k for k, _ in semconv.KIND_KEYS}
              | set(semconv.FALLBACK_KEYS) | semconv.MESSAGE_KEYS
              | {f"{p}0.{rest}" for p in semconv.MESSAGE_PREFIXES
                 for rest in ("message.role", "message.content", "content", "role",
                              "embedding.text")}
              | {"input.mime_type", "other.key"})
VALUES = st.one_of(
    st.integers(-3, 3), st.integers(0, 10**6), st.just(2**63),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(["", "12", "-3", "chat", "LLM", "execute_tool", "openai", "gpt-4o",
                     "true", "no", "<class 'openai.RateLimitError'>", " 7 ",
                     json.dumps({"model": "m", "stream": True}),
                     json.dumps([{"role": "user", "parts": [{"type": "text",
                                                             "content": "hi"}]}]),
                     "application/json", json.dumps({"messages": [{"role": "user",
                                                                    "content": "x"}]}),
                     "user", "assistant", "0", "-0.5", "0.002"]),
    st.tuples(st.sampled_from(["stop", "length"])),
)
SPAN = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


@settings(max_examples=150, deadline=None)
@given(st.lists(SPAN, min_size=1, max_size=12))
@example([{"gen_ai.usage.input_tokens": -3, "llm.usage.prompt_tokens": 5},
          {"gen_ai.usage.input_tokens": 4}, {"gen_ai.request.model": ""}])
# one key set, values of one type or of types that compare equal (1, 1.0, True): the
# normalizer's fast paths judge a column by its types and distinct values
@example([{"gen_ai.usage.input_tokens": v, "gen_ai.operation.name": op,
           "gen_ai.request.model": m}
          for v, op, m in [(1, "chat", "gpt-4o"), (True, "CHAT", "gpt-4o"),
                           (1.0, "execute_tool", ""), (2**63, "x", "m"), (-1, "chat", "m")]])
@example([{"gen_ai.usage.input_tokens": 7, "gen_ai.operation.name": "chat",
           "gen_ai.is_streaming": True, "openinference.span.kind": "TOOL"}] * 3)
def test_normalize_equals_semconv_span_by_span(spans: list[dict[str, Any]]) -> None:
    events: list[tuple[Any, ...]] = [()] * len(spans)
    out = normalize(spans, events, ["span"] * len(spans))
    for i, attrs in enumerate(spans):
        expected = semconv.scalar_fields(attrs)
        for name in semconv.FIELD_KEYS:
            assert same(out.fields[name][i], expected[name]), (name, attrs)
        assert sorted(out.unreadable.get(i, [])) == sorted(expected[semconv.UNREADABLE])
        kind = semconv.span_kind(attrs, expected)
        assert out.kinds[i] == kind
        assert (out.inputs[i], out.outputs[i]) == semconv.messages(attrs, (), kind, "span")
