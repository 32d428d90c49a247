"""Judgements as OpenTelemetry: a ``gen_ai.evaluation.result`` on the span it judges.

The GenAI semantic conventions define an evaluation result as an event parented to the
evaluated operation's span. It is recorded here as a zero-length child span of that
span, named after the event and carrying the event's attributes (docs/ARCHITECTURE.md,
"Judgements are child spans"): the evaluated span has usually ended by the time anyone
judges it, so nothing can be added to it; a span goes where every span goes (the views,
the frames, the store, files, forwarding) and every trace backend shows it beside the
call, where a log-based event needs a logs pipeline the backend may not read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from .collector import SpanCollector
from .genai import (
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    GEN_AI_RESPONSE_ID,
)

#: the event (and here, span) name of a judgement (the package names attributes only)
EVALUATION = "gen_ai.evaluation.result"
EVALUATION_NAME = GEN_AI_EVALUATION_NAME
SCORE_VALUE = GEN_AI_EVALUATION_SCORE_VALUE
SCORE_LABEL = GEN_AI_EVALUATION_SCORE_LABEL
EXPLANATION = GEN_AI_EVALUATION_EXPLANATION
RESPONSE_ID = GEN_AI_RESPONSE_ID
#: OpenInference's kind for it, so Phoenix files it with its evaluators
_OPENINFERENCE_KIND = ("openinference.span.kind", "EVALUATOR")

#: labels that make a judgement negative (as does a score of 0 or less)
NEGATIVE_LABELS = frozenset({"fail", "failed", "incorrect", "wrong", "bad", "no", "false",
                             "thumbs_down", "thumbs-down", "negative"})


def is_negative(score: float | None, label: str | None,
                negative_labels: Iterable[str] = NEGATIVE_LABELS) -> bool:
    """A judgement that says the output was not good: a score of 0 or less, or a label
    among ``negative_labels`` (case-insensitive)."""
    if score is not None and not math.isnan(score) and score <= 0:
        return True
    return label is not None and label.strip().lower() in {n.lower() for n in negative_labels}


def checked(name: Any, score: Any, label: Any, explanation: Any
            ) -> tuple[str, float | None, str | None, str | None]:
    """The judgement's fields, or a ValueError / TypeError that says what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"an evaluation needs a name (a non-empty string), got {name!r}")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise TypeError(f"score must be a number, got {type(score).__name__}")
        score = float(score)
        if not math.isfinite(score):
            raise ValueError(f"score must be finite, got {score!r}")
    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be a string, got {type(label).__name__}")
    if explanation is not None and not isinstance(explanation, str):
        raise TypeError(f"explanation must be a string, got {type(explanation).__name__}")
    if score is None and not label:
        raise ValueError("an evaluation needs a score, a label or both")
    return name.strip(), score, label or None, explanation or None


def record(tracer: trace.Tracer, collector: SpanCollector, trace_id: int, span_id: int,
           cell_seq: int | None, name: str, score: float | None = None, label: str | None = None,
           explanation: str | None = None, response_id: str | None = None) -> int:
    """Record a judgement of the span ``(trace_id, span_id)``, in the cell it belongs to
    (``cell_seq``, whatever cell runs now); returns the judgement span's id."""
    attributes: dict[str, Any] = {EVALUATION_NAME: name, _OPENINFERENCE_KIND[0]:
                                  _OPENINFERENCE_KIND[1]}
    if score is not None:
        attributes[SCORE_VALUE] = score
    if label is not None:
        attributes[SCORE_LABEL] = label
    if explanation is not None:
        attributes[EXPLANATION] = explanation
    if response_id:
        attributes[RESPONSE_ID] = response_id
    parent = SpanContext(trace_id, span_id, is_remote=False,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    now = time.time_ns()
    span = tracer.start_span(EVALUATION, context=context, start_time=now,
                             attributes=attributes)
    own = span.get_span_context().span_id
    collector.place(own, cell_seq)
    span.end(end_time=now)
    return own
