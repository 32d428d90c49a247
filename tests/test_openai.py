"""The real `openai` client, over HTTP to the demo server, inside traced cells."""

from __future__ import annotations

import json

import openai
import pytest
from genai_prices import Usage, calc_price
from IPython.core.interactiveshell import InteractiveShell

import llmtrace_nb
from llmtrace_nb._notebook import session
from llmtrace_nb.demo import DemoServer

from conftest import run


@pytest.fixture
def clients(shell: InteractiveShell, demo_server: DemoServer) -> InteractiveShell:
    shell.user_ns["client"] = openai.OpenAI(base_url=demo_server.base_url, api_key="sk-demo",
                                            max_retries=0)
    shell.user_ns["openai"] = openai
    shell.user_ns["aclient"] = openai.AsyncOpenAI(base_url=demo_server.base_url,
                                                  api_key="sk-demo", max_retries=0)
    demo_server.set_latency(0.0)
    return shell


def expected_cost(model: str, usage: dict[str, int]) -> float:
    return float(calc_price(
        Usage(input_tokens=usage["input"], cache_read_tokens=usage["cached"],
              output_tokens=usage["output"]),
        model_ref=model, provider_id="openai").total_price)


CELL = """\
%%trace several calls
from concurrent.futures import ThreadPoolExecutor
usages = []

def record(resp, streamed=False):
    u = resp.usage
    usages.append({"model": resp.model, "input": u.prompt_tokens, "output": u.completion_tokens,
                   "cached": u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details
                   else 0, "streamed": streamed})

def ask(q, model="gpt-4o-mini"):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}])
    record(r)
    return r.choices[0].message.content

ask("Plain question with a [cached] prefix, please")
stream = client.chat.completions.create(
    model="gpt-4o", messages=[{"role": "user", "content": "Stream a few words to me"}],
    stream=True, stream_options={"include_usage": True})
chunks = list(stream)
last = chunks[-1]
usages.append({"model": last.model, "input": last.usage.prompt_tokens,
               "output": last.usage.completion_tokens, "cached": 0, "streamed": True})
with ThreadPoolExecutor(3) as pool:
    list(pool.map(ask, ["one", "two words", "three more words"]))
len(usages)
"""


def test_traced_cell_with_several_calls(clients: InteractiveShell,
                                        demo_server: DemoServer) -> None:
    demo_server.set_latency(0.05)
    result, out = run(clients, CELL)
    assert result.success and result.result == 5
    usages = clients.user_ns["usages"]
    calls = llmtrace_nb.llm_calls_df()
    assert len(calls) == 5  # one llm row per call
    assert (calls["cell"] == result.execution_count).all()
    assert (calls["cell_name"] == "several calls").all()
    root = llmtrace_nb.spans_df().query("kind == 'cell'").iloc[0]
    assert (calls["trace_id"] == root["trace_id"]).all()  # thread-pool calls included
    # match each call to its recorded usage by (model, input, output)
    rows = {(r.model, r.input_tokens, r.output_tokens): r for r in calls.itertuples()}
    assert len(rows) == 5
    for u in usages:
        row = rows[(u["model"], u["input"], u["output"])]
        assert row.cache_read_tokens == u["cached"]
        assert row.cost_usd == pytest.approx(expected_cost(u["model"], u), rel=1e-12)
        assert row.is_streaming == u["streamed"]
        if u["streamed"]:
            assert 50 <= row.ttft_ms <= row.duration_ms
        else:
            assert row.ttft_ms != row.ttft_ms  # NaN
    assert any(u["cached"] > 0 for u in usages)
    total_cost = sum(expected_cost(u["model"], u) for u in usages)
    assert llmtrace_nb.cells_df()["cost_usd"].iloc[0] == pytest.approx(total_cost, rel=1e-9)
    assert "5 LLM calls" in out.text


def test_async_client_calls_belong_to_the_cell(clients: InteractiveShell) -> None:
    result, _ = run(clients, "%%trace\nimport asyncio\n"
                             "rs = await asyncio.gather(*(aclient.chat.completions.create(\n"
                             "    model='gpt-4o-mini',\n"
                             "    messages=[{'role': 'user', 'content': str(i)}])\n"
                             "    for i in range(10)))\n"
                             "s = await aclient.chat.completions.create(model='gpt-4o-mini',\n"
                             "    messages=[{'role': 'user', 'content': 'stream'}], stream=True,\n"
                             "    stream_options={'include_usage': True})\n"
                             "async for _ in s: pass\n"
                             "sum(r.usage.total_tokens for r in rs)")
    assert result.success
    calls = llmtrace_nb.llm_calls_df()
    assert len(calls) == 11 and (calls["cell"] == result.execution_count).all()
    assert calls["total_tokens"].iloc[:10].sum() == result.result
    streamed = calls[calls["is_streaming"]]
    assert len(streamed) == 1 and streamed["ttft_ms"].iloc[0] > 0
    assert (calls["cost_usd"] > 0).all()


def test_embeddings_responses_and_tools(clients: InteractiveShell) -> None:
    result, _ = run(clients, "%%trace --quiet\n"
                             "client.embeddings.create(model='text-embedding-3-small',\n"
                             "                         input=['alpha beta', 'gamma'])\n"
                             "client.responses.create(model='gpt-4o-mini', input='Hello there')\n"
                             "tools = [{'type': 'function', 'function': {'name': 'get_weather',\n"
                             "  'parameters': {'type': 'object', 'properties': {'city':\n"
                             "  {'type': 'string'}}, 'required': ['city']}}}]\n"
                             "client.chat.completions.create(model='gpt-4o', tools=tools,\n"
                             "  messages=[{'role': 'user', 'content': 'Weather in Paris'}])\n")
    assert result.success
    calls = llmtrace_nb.llm_calls_df().set_index("name")
    emb = calls.loc["openai.embeddings"]
    assert emb["kind"] == "embedding" and emb["input_tokens"] == 3 and emb["cost_usd"] > 0
    resp = calls.loc["openai.response"]
    assert resp["kind"] == "llm" and resp["output_tokens"] > 0 and resp["cost_usd"] > 0
    assert resp["output_messages"][0]["content"] == "Demo reply to: Hello there"
    chat = calls.loc["openai.chat"]
    assert chat["output_messages"][0]["tool_calls"] == [
        {"id": chat["output_messages"][0]["tool_calls"][0]["id"], "name": "get_weather",
         "arguments": {"city": "Paris"}}]


def test_failed_call_is_an_error_span(clients: InteractiveShell) -> None:
    result, out = run(clients, "%%trace\n"
                               "client.chat.completions.create(model='demo-error-500',\n"
                               "    messages=[{'role': 'user', 'content': 'x'}])")
    assert isinstance(result.error_in_exec, openai.InternalServerError)
    df = llmtrace_nb.spans_df().set_index("kind")
    assert df.loc["llm", "status"] == "error"
    assert df.loc["llm", "error_type"] == "InternalServerError"
    assert df.loc["cell", "status"] == "error"
    assert "2 errors" in out.text


def test_authorization_header_never_reaches_a_frame(clients: InteractiveShell) -> None:
    secret = "sk-proj-THISISASECRETKEY1234567890"
    run(clients, "%%trace --quiet\n"
                 "client.chat.completions.create(model='gpt-4o-mini',\n"
                 f"    extra_headers={{'Authorization': 'Bearer {secret}', 'api-key': 'k123'}},\n"
                 f"    messages=[{{'role': 'user', 'content': 'my key: {secret}'}}])")
    df = llmtrace_nb.spans_df()
    raw = session.require().collector.snapshot().spans()
    assert any(secret in str(s.attributes.get("gen_ai.headers")) for s, _ in raw)
    text = json.dumps(df.drop(columns=["start_time", "end_time"]).to_dict("records"),
                      default=str)
    assert secret not in text and "k123" not in text
    llm = df[df["kind"] == "llm"].iloc[0]
    assert "[REDACTED]" in llm["attributes"]["gen_ai.headers"]
    assert llm["input_messages"][0]["content"] == "my key: [REDACTED]"


def test_trace_context_is_sent_only_when_asked(clients: InteractiveShell,
                                              demo_server: DemoServer) -> None:
    sent: list[str | None] = []
    http = openai.DefaultHttpxClient(
        event_hooks={"request": [lambda request: sent.append(request.headers.get("traceparent"))]})
    clients.user_ns["hooked"] = openai.OpenAI(base_url=demo_server.base_url, api_key="sk-demo",
                                              max_retries=0, http_client=http)
    cell = ("%%trace --quiet\n"
            "headers = {'x-mine': '1'}\n"
            "hooked.chat.completions.create(model='gpt-4o-mini', extra_headers=headers,\n"
            "    messages=[{'role': 'user', 'content': 'hi'}])\n"
            "for _ in hooked.chat.completions.create(model='gpt-4o-mini', stream=True,\n"
            "        messages=[{'role': 'user', 'content': 'hi'}]):\n"
            "    pass\n"
            "hooked.embeddings.create(model='text-embedding-3-small', input='hi')")
    _, out = run(clients, "%llmtrace status")
    assert "traceparent: off" in out.stdout
    run(clients, cell)
    assert sent == [None, None, None]
    assert clients.user_ns["headers"] == {"x-mine": "1"}  # the caller's dict untouched

    _, out = run(clients, "%llmtrace traceparent on")
    assert "traceparent: on" in out.stdout
    run(clients, cell)
    calls = llmtrace_nb.spans_df().query("kind in ('llm', 'embedding')").tail(3)
    ids = [f"00-{t}-{s}" for t, s in zip(calls["trace_id"], calls["span_id"], strict=True)]
    assert [h and h.rsplit("-", 1)[0] for h in sent[3:]] == ids  # each call's own span
    assert all(int(h.rsplit("-", 1)[1], 16) & 1 for h in sent[3:])  # sampled
    llmtrace_nb.enable(traceparent=False)
    run(clients, cell)
    assert sent[6:] == [None, None, None]
    with pytest.raises(TypeError, match="traceparent must be True or False"):
        llmtrace_nb.enable(traceparent="yes")  # type: ignore[arg-type]


def test_content_off_records_no_text(clients: InteractiveShell) -> None:
    run(clients, "%llmtrace content off")
    run(clients, "%%trace --quiet\n"
                 "client.chat.completions.create(model='gpt-4o-mini',\n"
                 "    messages=[{'role': 'user', 'content': 'top secret prompt'}])")
    raw = session.require().collector.snapshot().spans()
    llm = next(s for s, _ in raw if s.name == "openai.chat")
    assert "top secret" not in json.dumps(dict(llm.attributes), default=str)
    row = llmtrace_nb.llm_calls_df().iloc[0]
    assert row["input_messages"] is None and row["input_tokens"] > 0


def test_rate_limit_retried_then_ok_is_one_span(clients: InteractiveShell,
                                                demo_server: DemoServer) -> None:
    clients.user_ns["retrying"] = openai.OpenAI(base_url=demo_server.base_url,
                                                api_key="sk-demo", max_retries=2)
    before = demo_server.requests
    demo_server.fail_next(429, count=2, retry_after=0.01)
    result, _ = run(clients, "%%trace --quiet\n"
                             "retrying.chat.completions.create(model='gpt-4o-mini',\n"
                             "    messages=[{'role': 'user', 'content': 'x'}]).usage.total_tokens")
    assert result.success and demo_server.requests - before == 3  # two 429s, then 200
    calls = llmtrace_nb.llm_calls_df()
    assert len(calls) == 1 and calls["status"].iloc[0] != "error"
    assert calls["total_tokens"].iloc[0] == result.result


@pytest.mark.parametrize(("setup", "model", "kw", "error"), [
    ("demo_server.fail_next(429, count=3, retry_after=0.01)", "gpt-4o-mini",
     "max_retries=2", "RateLimitError"),
    ("", "demo-error-500", "max_retries=0", "InternalServerError"),
    ("", "demo-slow", "max_retries=0, timeout=0.2", "APITimeoutError"),
])
def test_failures_are_error_spans(clients: InteractiveShell, demo_server: DemoServer,
                                  setup: str, model: str, kw: str, error: str) -> None:
    clients.user_ns["demo_server"] = demo_server
    result, _ = run(clients, f"%%trace --quiet\n{setup}\n"
                             "c = openai.OpenAI(base_url=demo_server.base_url, api_key='k',\n"
                             f"                  {kw})\n"
                             f"c.chat.completions.create(model='{model}',\n"
                             "    messages=[{'role': 'user', 'content': 'x'}])")
    assert type(result.error_in_exec).__name__ == error
    llm = llmtrace_nb.llm_calls_df()
    assert len(llm) == 1
    assert llm["status"].iloc[0] == "error" and llm["error_type"].iloc[0] == error


def test_responses_streamed_and_tool_stream(clients: InteractiveShell) -> None:
    result, _ = run(clients, "%%trace --quiet\n"
                             "events = list(client.responses.create(model='gpt-4o-mini',\n"
                             "    input='Stream this please', stream=True))\n"
                             "tools = [{'type': 'function', 'function': {'name': 'lookup',\n"
                             "  'parameters': {'type': 'object', 'properties': {'q':\n"
                             "  {'type': 'string'}}}}}]\n"
                             "chunks = list(client.chat.completions.create(model='gpt-4o',\n"
                             "  tools=tools, stream=True, stream_options={'include_usage': True},\n"
                             "  messages=[{'role': 'user', 'content': 'find cats'}]))\n"
                             "events[-1].response.usage.total_tokens")
    assert result.success
    calls = llmtrace_nb.llm_calls_df().set_index("name")
    resp = calls.loc["openai.response"]
    assert resp["is_streaming"] and resp["total_tokens"] == result.result
    assert resp["cost_usd"] > 0 and 0 < resp["ttft_ms"] < resp["duration_ms"]
    chat = calls.loc["openai.chat"]
    assert chat["is_streaming"] and chat["ttft_ms"] > 0
    assert chat["output_messages"][0]["tool_calls"][0]["name"] == "lookup"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_with_streaming_response_is_one_span_with_usage_and_ttft(
        clients: InteractiveShell, api: str) -> None:
    """What openai-agents does for streamed runs: the instrumentation alone makes a span
    with the request only (chat) or none at all (Responses); _openai_streams fills it."""
    call = ("client.chat.completions.with_streaming_response.create(model='gpt-4o-mini',"
            " messages=[{'role': 'user', 'content': 'Stream it'}], stream=True,"
            " stream_options={'include_usage': True})" if api == "chat" else
            "client.responses.with_streaming_response.create(model='gpt-4o-mini',"
            " input='Stream it', stream=True)")
    result, _ = run(clients, f"%%trace --quiet\nwith {call} as r:\n"
                             "    events = list(r.parse())\nlen(events)")
    assert result.success and result.result > 1
    calls = llmtrace_nb.llm_calls_df()
    assert len(calls) == 1
    row = calls.iloc[0]
    assert row["is_streaming"] and row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["model"] == "gpt-4o-mini-2024-07-18" and row["cost_usd"] > 0
    assert 0 < row["ttft_ms"] < row["duration_ms"]


def test_a_call_in_a_running_event_loop_starts_no_thread(clients: InteractiveShell) -> None:
    """Every Jupyter cell runs inside an event loop: the instrumentation recorded each
    chat call's request in a new thread with a new loop (~1 ms a call); now in line,
    with the messages still recorded."""
    import asyncio
    import threading

    started = []
    real_start = threading.Thread.start
    caller = threading.current_thread()

    def counting(self: threading.Thread) -> None:
        if threading.current_thread() is caller:  # not the demo server's own threads
            started.append(self.name)
        real_start(self)

    async def calls() -> None:
        for _ in range(5):
            clients.user_ns["client"].chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "in a loop"}])

    threading.Thread.start = counting  # type: ignore[method-assign]
    try:
        asyncio.run(calls())
    finally:
        threading.Thread.start = real_start  # type: ignore[method-assign]
    assert started == []
    rows = llmtrace_nb.llm_calls_df()
    assert len(rows) == 5
    assert all(m == [{"role": "user", "content": "in a loop"}] for m in rows["input_messages"])


def test_a_request_whose_image_upload_waits_is_still_recorded(
        clients: InteractiveShell) -> None:
    """A message with a base64 image makes the instrumentation upload it (Traceloop sets
    ``Config.upload_base64_image``), which may really wait: that request is not stepped
    in line but run by the instrumentation's own runner, so its messages are kept. The
    coroutine is its ``dont_throw`` wrapper's, whose frame holds the call's arguments as
    ``args``: read as ``kwargs`` the image was never seen and the request was dropped."""
    import asyncio

    from opentelemetry.instrumentation.openai.shared.config import Config

    uploads = []

    async def upload(trace_id: str, span_id: str, name: str, data: str) -> str:
        await asyncio.sleep(0)  # a real wait: the coroutine is suspended here
        uploads.append(name)
        return f"https://images.example/{name}"

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    saved = Config.upload_base64_image
    Config.upload_base64_image = upload  # type: ignore[assignment]
    try:
        clients.user_ns["client"].chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": [
                {"type": "text", "text": "what is in the picture?"}, image]}])
    finally:
        Config.upload_base64_image = saved  # type: ignore[method-assign]
    assert len(uploads) == 1
    row = llmtrace_nb.llm_calls_df().iloc[-1]
    assert row["request_model"] == "gpt-4o-mini"
    assert "what is in the picture?" in json.dumps(row["input_messages"])
