"""One run of the per-call benchmark (``real_path.py``), in an interpreter of its own.

    python benchmarks/per_call_client.py MODE STREAM N BASE_URL SINK_URL

MODE is ``bare`` (the client alone), ``ours`` (``%load_ext llmtrace_nb`` and the calls
made inside a ``%%trace`` cell, as a user runs them), ``instrumentation``
(opentelemetry-instrumentation-openai as shipped, on an SDK provider with no processor:
what the instrumentation costs by itself, whoever collects its spans) or ``phoenix``
(Phoenix's ``register(batch=True)`` and OpenInference's OpenAI instrumentation,
exporting to SINK_URL; run with the Phoenix venv's python). Prints the median
microseconds of N calls after a warm-up, as JSON. It imports llmtrace_nb only in
``ours``: the Phoenix venv has no llmtrace_nb.

It also prints ``paired_us``: what tracing adds to a call measured inside this one
process, in blocks of calls taking turns with blocks whose tracing is switched off by
OpenTelemetry's suppression flag (which the OpenAI instrumentation and OpenInference both
honour: the call then goes straight to the client). Both sides share one interpreter,
heap and connection, so the host's drift between processes, which the medians above
carry, cancels; in ``bare`` the two sides are alike and the figure is the noise floor.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path, and its phoenix.py (the
# time-to-data benchmark) would shadow the phoenix package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

WARM = 50
#: calls per block of the paired measurement (it runs N // 4 blocks of each side)
BLOCK = 10
MESSAGES = [{"role": "user", "content": "Hello there, what is the capital of France?"}]


def call(client: Any, stream: bool) -> None:
    if stream:
        for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True,
                stream_options={"include_usage": True}):
            pass
    else:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def timed_calls(client: Any, n: int, stream: bool) -> list[int]:
    times = []
    for i in range(WARM + n):
        start = time.perf_counter_ns()
        call(client, stream)
        if i >= WARM:
            times.append(time.perf_counter_ns() - start)
    return times


def paired(client: Any, stream: bool, suppressible: bool, blocks: int) -> float:
    """Median µs a call's tracing adds, from blocks with and without it, taking turns
    (the order flips each pair, so neither side always runs on a warmer cache)."""
    from opentelemetry import context

    def block(suppress: bool) -> float:
        token = context.attach(context.set_value(
            context._SUPPRESS_INSTRUMENTATION_KEY, True)) if suppress else None
        try:
            start = time.perf_counter_ns()
            for _ in range(BLOCK):
                call(client, stream)
            return (time.perf_counter_ns() - start) / BLOCK / 1000
        finally:
            if token is not None:
                context.detach(token)

    added = []
    for i in range(blocks):
        order = (True, False) if i % 2 else (False, True)
        took = {suppress: block(suppress and suppressible) for suppress in order}
        added.append(took[False] - took[True])
    return statistics.median(added)


def measured(client: Any, n: int, stream: bool, suppressible: bool) -> dict[str, float]:
    times = timed_calls(client, n, stream)
    return {"median_us": statistics.median(times) / 1000,
            "paired_us": paired(client, stream, suppressible, max(2, n // 4))}


def in_a_traced_cell(client: Any, n: int, stream: bool) -> dict[str, float]:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    with capture_output():
        shell.run_line_magic("load_ext", "llmtrace_nb")
    shell.user_ns.update(client=client, measured=measured, n=n, stream=stream)
    with capture_output():  # the cell's view is built and shown after the calls
        result = shell.run_cell("%%trace per-call\nfigures = measured(client, n, stream, True)")
    result.raise_error()
    figures: dict[str, float] = shell.user_ns["figures"]
    return figures


def main(argv: list[str]) -> None:
    mode, stream, n, base_url, sink = argv[0], argv[1] == "stream", int(argv[2]), argv[3], \
        argv[4]
    import openai

    if mode == "phoenix":
        from openinference.instrumentation.openai import OpenAIInstrumentor
        from phoenix.otel import register

        provider = register(endpoint=sink, batch=True, project_name="bench",
                            verbose=False)
        OpenAIInstrumentor().instrument(tracer_provider=provider)
    elif mode == "instrumentation":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider

        OpenAIInstrumentor().instrument(tracer_provider=TracerProvider())
    client = openai.OpenAI(base_url=base_url, api_key="sk-demo", max_retries=0)
    figures = (in_a_traced_cell(client, n, stream) if mode == "ours"
               else measured(client, n, stream, suppressible=mode != "bare"))
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
