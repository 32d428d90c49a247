"""Workarounds for other packages' quirks, each in one place with the reason."""

from __future__ import annotations

import os
import sys

_OPENAI_INSTRUMENTATION = "opentelemetry.instrumentation.openai"


def unwrap_openai() -> int:
    """Remove opentelemetry-instrumentation-openai's wrappers from the OpenAI client.

    Its ``uninstrument()`` (0.62) calls ``unwrap("openai.resources.chat.completions",
    "Completions.create")``, which splits the first argument into module and class at the
    last dot and so looks for an attribute ``"Completions.create"`` on a module: nothing is
    unwrapped and every call keeps making spans after ``%unload_ext``. This walks the
    loaded ``openai.resources`` classes and restores each method wrapped by that package.
    Returns how many methods were restored.
    """
    restored = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("openai.resources") or module is None:
            continue
        for cls in list(vars(module).values()):
            if not isinstance(cls, type) or cls.__module__ != name:
                continue
            for attr, value in list(vars(cls).items()):
                wrapper = getattr(value, "_self_wrapper", None)
                if wrapper is not None and getattr(wrapper, "__module__", "").startswith(
                        _OPENAI_INSTRUMENTATION):
                    setattr(cls, attr, value.__wrapped__)
                    restored += 1
    return restored


def otel_content_value(on: bool) -> str:
    """The value of OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT that means ``on``.

    The contrib GenAI instrumentations take ``true``/``false`` in their default mode, but
    with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` only ``NO_CONTENT``,
    ``SPAN_ONLY``, ``EVENT_ONLY`` or ``SPAN_AND_EVENT`` (anything else means no content).
    """
    if "gen_ai_latest_experimental" in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", ""):
        return "SPAN_AND_EVENT" if on else "NO_CONTENT"
    return "true" if on else "false"
