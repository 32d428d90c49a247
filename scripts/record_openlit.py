"""Record spans from real openlit runs against the demo server, as test fixtures.

Why fixtures: openlit 1.45 requires ``openai<3`` (and ``anthropic<1``), while the project's
environment runs openai 3.x, so openlit cannot be installed next to llmtrace_nb. Instead,
openlit runs in a separate virtualenv and the spans it produces, together with the ones
llmtrace_nb's own OpenAI instrumentation makes, are saved with ``llmtrace_nb.save`` (OTLP
JSON lines). The tests in the main environment load them with ``llmtrace_nb.load``.

Each scenario runs in a fresh interpreter (the global tracer provider can be set only once
per process) inside an IPython shell, as in a notebook, against its own demo server (so
the response ids are ``chatcmpl-demo-1`` and ``-2`` in both):

``after_load_ext``
    ``%load_ext llmtrace_nb``, then ``openlit.init(...)``: llmtrace_nb owns the global
    provider (openlit reuses it) and both instrument the OpenAI client.
``before_load_ext``
    ``openlit.init(...)``, then ``%load_ext llmtrace_nb``: openlit owns the global provider
    and has already wrapped the OpenAI client.

then one ``%%trace`` cell that makes a plain chat call, a streamed chat call (with
``stream_options={"include_usage": True}``) and an embeddings call. openlit is left with
its default instrumentors, so its httpx instrumentation adds a ``POST`` span per call.

Writes ``tests/fixtures/openlit/<scenario>.jsonl`` (the spans) and
``<scenario>.expected.json`` (what the demo server answered: the number of HTTP requests
it received and, per call, the model and usage the client got back).

Nothing leaves the machine: the demo server is on 127.0.0.1, openlit gets no OTLP
endpoint and ``OTEL_{TRACES,LOGS,METRICS}_EXPORTER=none`` (so it adds no console or OTLP
exporter either), metrics are off, and its price list is an empty JSON file instead of
the one it would download. With no prices openlit records ``gen_ai.usage.cost = 0``,
which is exactly what it records offline; the fixtures keep that on purpose.

Regenerate (from the repository root; build/ is git-ignored)::

    python3 -m venv build/openlit-venv          # Python 3.11
    build/openlit-venv/bin/python -m pip install --upgrade pip
    build/openlit-venv/bin/python -m pip install "openlit==1.45.*" \\
        "opentelemetry-api==1.45.1" "opentelemetry-sdk==1.45.1" \\
        "opentelemetry-semantic-conventions==0.66b1" "opentelemetry-instrumentation==0.66b1" \\
        "opentelemetry-instrumentation-threading==0.66b1" \\
        "opentelemetry-exporter-otlp-proto-http==1.45.1" \\
        "opentelemetry-instrumentation-openai==0.62.4" "openai>=1.60,<4" "ipython>=8.18" \\
        "ipykernel>=6.29" "ipywidgets>=8.1" "pandas>=2.2" "plotly>=6" "anywidget>=0.9" \\
        "genai-prices>=0.2.3,<0.3"
    build/openlit-venv/bin/python -m pip check
    build/openlit-venv/bin/python scripts/record_openlit.py

llmtrace_nb is not installed there (that would build its JupyterLab extension): this
script puts the repository root on ``sys.path`` and ``PYTHONPATH``. The second list is
llmtrace_nb's runtime dependencies from pyproject.toml; pip resolves openai 2.x and
anthropic 0.x for openlit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT_DIR = ROOT / "tests" / "fixtures" / "openlit"

SCENARIOS = {
    "after_load_ext": "openlit.init() after %load_ext llmtrace_nb (llmtrace_nb owns the "
                      "global tracer provider; openlit reuses it)",
    "before_load_ext": "openlit.init() before %load_ext llmtrace_nb (openlit owns the "
                       "global tracer provider and has wrapped the OpenAI client first)",
}

CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
API_KEY = "sk-demo"  # the demo server checks no key; llmtrace_nb.save scrubs it anyway

# The notebook cells each scenario runs, in order. `client` is in the user namespace.
OPENLIT_CELL = """\
import openlit
openlit.init(
    application_name="openlit-fixture",
    environment="fixture",
    otlp_endpoint=None,
    disable_batch=True,
    disable_metrics=True,
    capture_message_content=True,
    pricing_json=PRICING_JSON,
)
"""
LOAD_EXT_CELL = "%load_ext llmtrace_nb"
CALLS_CELL = f"""\
%%trace openlit calls
reply = client.chat.completions.create(
    model={CHAT_MODEL!r},
    messages=[{{"role": "user", "content": "Hello from a plain chat call"}}],
)
stream = client.chat.completions.create(
    model={CHAT_MODEL!r},
    messages=[{{"role": "user", "content": "Hello from a streamed chat call"}}],
    stream=True,
    stream_options={{"include_usage": True}},
)
chunks = list(stream)
vectors = client.embeddings.create(model={EMBEDDING_MODEL!r}, input="Hello from embeddings")
"""
CELLS = {
    "after_load_ext": [LOAD_EXT_CELL, OPENLIT_CELL, CALLS_CELL],
    "before_load_ext": [OPENLIT_CELL, LOAD_EXT_CELL, CALLS_CELL],
}

VERSIONED = ("openlit", "openai", "opentelemetry-api", "opentelemetry-sdk",
             "opentelemetry-instrumentation", "opentelemetry-instrumentation-openai",
             "opentelemetry-instrumentation-httpx")


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


# -- child: one scenario in a fresh interpreter ----------------------------------------------


def _usage_record(model: str, requested: str, usage: Any, *, streamed: bool,
                  operation: str, response_id: str | None) -> dict[str, Any]:
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    output = getattr(usage, "completion_tokens", None)
    return {
        "operation": operation,
        "request_model": requested,
        "model": model,
        "input_tokens": usage.prompt_tokens,
        # embeddings report no output tokens
        "output_tokens": output,
        "cached_tokens": cached or 0,
        "streamed": streamed,
        "response_id": response_id,
    }


def _calls_seen(ns: dict[str, Any]) -> list[dict[str, Any]]:
    """What the client got back from the demo server, one record per HTTP call."""
    reply, chunks, vectors = ns["reply"], ns["chunks"], ns["vectors"]
    with_usage = [c for c in chunks if getattr(c, "usage", None) is not None]
    if len(with_usage) != 1:
        raise RuntimeError(f"expected one stream chunk with usage, got {len(with_usage)}")
    last = with_usage[0]
    return [
        _usage_record(reply.model, CHAT_MODEL, reply.usage, streamed=False, operation="chat",
                      response_id=reply.id),
        _usage_record(last.model, CHAT_MODEL, last.usage, streamed=True, operation="chat",
                      response_id=last.id),
        _usage_record(vectors.model, EMBEDDING_MODEL, vectors.usage, streamed=False,
                      operation="embeddings", response_id=None),
    ]


def run_child(scenario: str, base_url: str, out: Path, pricing_json: str) -> None:
    """Run the scenario's cells, save the spans, print what the client saw as JSON."""
    import openai
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    import llmtrace_nb
    from llmtrace_nb._notebook import session as llmtrace_session

    ip = InteractiveShell.instance()
    ip.user_ns["client"] = openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
    ip.user_ns["PRICING_JSON"] = pricing_json
    for source in CELLS[scenario]:
        with capture_output() as captured:
            result = ip.run_cell(source, store_history=True)
        if not result.success:
            raise RuntimeError(f"cell failed: {source.splitlines()[0]!r}: "
                               f"{result.error_in_exec or result.error_before_exec}\n"
                               f"{captured.stdout}{captured.stderr}")
    saved = llmtrace_nb.save(out)
    session = llmtrace_session.require()
    print(json.dumps({
        "spans": saved,
        "calls": _calls_seen(ip.user_ns),
        # which OpenAI instrumentation llmtrace_nb turned on itself, and which it found on
        "llmtrace_nb": {"instrumented": [i.name for i in session.instrumented],
                        "found": list(session.found)},
    }))


# -- parent: demo server, one subprocess per scenario ---------------------------------------


def _child_env() -> dict[str, str]:
    # Nothing from the caller's OTel/openlit/Traceloop settings may change what is recorded.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "OPENLIT_", "TRACELOOP_"))}
    env.update({
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    })
    return env


def record(scenario: str, out_dir: Path, pricing_json: str) -> dict[str, Any]:
    """Record one scenario against its own demo server (so response ids start at 1)."""
    from llmtrace_nb.demo import DemoServer

    spans_path = out_dir / f"{scenario}.jsonl"
    with DemoServer() as server:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", scenario,
             "--base-url", server.base_url, "--out", str(spans_path),
             "--pricing-json", pricing_json],
            capture_output=True, text=True, timeout=300, env=_child_env(), cwd=ROOT,
        )
        http_calls = server.requests
    if proc.returncode != 0:
        raise SystemExit(f"{scenario}: the recording subprocess failed:\n{proc.stderr[-4000:]}")
    if proc.stderr.strip():
        print(f"{scenario}: stderr of the recording subprocess:\n{proc.stderr.rstrip()}",
              file=sys.stderr)
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    if http_calls != len(child["calls"]):
        raise SystemExit(f"{scenario}: the demo server got {http_calls} requests for "
                         f"{len(child['calls'])} calls")
    expected = {
        "scenario": scenario,
        "description": SCENARIOS[scenario],
        "http_calls": http_calls,
        "calls": child["calls"],
        "spans_saved": child["spans"],
        "llmtrace_nb": child["llmtrace_nb"],
        "versions": _versions(),
        "openlit_pricing": "empty price list (offline): openlit records gen_ai.usage.cost = 0",
    }
    (out_dir / f"{scenario}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    return expected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"scenarios to record: {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--child", choices=list(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pricing-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    if args.child:
        run_child(args.child, args.base_url, args.out, args.pricing_json)
        return

    try:
        import openlit  # noqa: F401
    except ImportError:
        raise SystemExit("openlit is not importable: run this with build/openlit-venv/bin/python "
                         "(see the module docstring for how to create that venv)") from None
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # An empty price list, as openlit ends up with when it cannot download its own.
        pricing = Path(tmp) / "pricing.json"
        pricing.write_text("{}\n")
        for scenario in args.scenarios or list(SCENARIOS):
            expected = record(scenario, args.out_dir, str(pricing))
            print(f"{scenario}: {expected['spans_saved']} spans, "
                  f"{expected['http_calls']} HTTP calls -> {args.out_dir / scenario}.jsonl")


if __name__ == "__main__":
    main()
