"""A local, deterministic, OpenAI- and Anthropic-compatible HTTP server for demos and tests.

Notebooks, the test suite and ``make demo`` point the real ``openai`` (or ``anthropic``) client
at this server so every code path (plain calls, streaming, tool calls, retries, timeouts) can be
exercised with no API key and no network::

    from llmtrace_nb.demo import DemoServer

    with DemoServer() as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="sk-demo")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        claude = anthropic.Anthropic(base_url=srv.anthropic_base_url, api_key="demo")
        claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=100, messages=[...])

``srv.base_url`` is ``http://127.0.0.1:PORT/v1``; ``srv.anthropic_base_url`` is
``http://127.0.0.1:PORT`` (the anthropic client appends ``/v1/messages`` itself).
From a shell, ``python -m llmtrace_nb.demo [--port N] [--latency S] [--chunk-delay S]``
prints the (OpenAI) base URL as its first line of stdout and serves until Ctrl-C / SIGTERM.

Only the standard library is used. The server binds to loopback only (it checks no API key;
any ``Authorization`` or ``x-api-key`` header is accepted and never logged or echoed) and prints
no access log. Sockets use ``TCP_NODELAY``, and a small response's headers and body (or a
stream's headers and first frame) leave in one write, so a call costs about a millisecond
instead of waiting ~40 ms for the client's delayed ACK.

Endpoints (under ``/v1``)
    ``POST /chat/completions`` (``n``, ``stream``, ``stream_options.include_usage``, ``tools``),
    ``POST /embeddings`` (``encoding_format`` float or base64, ``dimensions``),
    ``POST /responses`` (``instructions``, ``stream``, function ``tools``), ``GET /models``,
    and Anthropic's ``POST /messages`` (``max_tokens``, ``system``, ``tools``, ``stream``).
    Anything else is a 404; a body that is not a JSON object, or lacks ``model``, is a 400.
    Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, except under
    ``/v1/messages``, where they use Anthropic's: ``{"type": "error", "error": {"type",
    "message"}, "request_id"}`` (types ``invalid_request_error``, ``not_found_error``,
    ``rate_limit_error``, ``api_error``, ``overloaded_error`` for 529, ...). The request id is
    sent as ``x-request-id`` (OpenAI routes) or ``request-id`` (Anthropic).

Deterministic replies
    Chat, Responses and Messages reply
    ``"Demo reply to: <first 60 chars of the last user message>"``. If the conversation ends
    with a tool result (a ``tool`` message, a ``function_call_output`` item, or a user message
    with a ``tool_result`` block) the reply is
    ``"Tool result received: <first 60 chars of the tool output>"``. If the request has
    ``tools`` (and ``tool_choice`` is not ``"none"`` / ``{"type": "none"}``) the reply is instead
    one call to the first function tool (or the one named by ``tool_choice``), with arguments
    built from its JSON schema (``parameters``; Anthropic's ``input_schema``): strings get the
    last word of the last user message, enums their first value, numbers ``1``, booleans
    ``true``, arrays ``[]`` and objects ``{}``. ``"auto"``, ``"required"`` and Anthropic's
    ``"auto"`` / ``"any"`` all call the tool. The call is a chat ``tool_calls`` entry
    (``call_demo_N``), a Responses ``function_call`` output item (id ``fc_demo_N``, call_id
    ``call_demo_N``) or an Anthropic ``tool_use`` block (``toolu_demo_N``); ``N`` is a
    request counter shared by every demo server of the process, so ids never repeat there
    (as a provider's do not). Anthropic server tools (a ``type`` other than ``"custom"``) are
    never called. Embeddings are 8 floats (or ``dimensions``), an L2-normalised hash of each
    input.

Token accounting (see :func:`count_tokens`)
    ``count_tokens(text)`` counts words (runs of ``\\w``) plus every other non-space character.
    Prompt tokens = sum over messages (and Responses ``instructions``) of
    ``4 + count_tokens(text content)``; completion tokens = ``count_tokens(reply)`` per choice
    (for a tool call: ``count_tokens(name) + count_tokens(arguments)``). Embedding tokens =
    ``count_tokens`` per string input, or the length of a token-array input.
    ``cached_tokens`` is ``prompt_tokens // 2`` when any message contains ``[cached]``, else 0.
    Models whose name starts with ``o`` (``o3-mini``) report 10 ``reasoning_tokens`` per choice,
    included in ``completion_tokens``. ``gpt-4o-mini`` and ``gpt-4o`` answer with their dated
    snapshot names, like the real API (as do the Claude aliases below); other model names are
    echoed.

Anthropic Messages (``POST /v1/messages``)
    The prompt total ``P`` = ``4 + count_tokens(system)`` (when ``system`` is given; a string
    or text blocks, ``cache_control`` ignored) plus, per message, ``4 + count_tokens(text)``,
    where a message's text is its string content or its ``text`` blocks and ``tool_result``
    contents joined by spaces (``tool_use`` blocks count nothing). Usage follows Anthropic:
    ``cache_read_input_tokens`` = ``P // 2`` if any system or message text contains
    ``[cached]``; ``cache_creation_input_tokens`` = ``(P - cache_read_input_tokens) // 2`` if
    any contains ``[cache-write]`` (also under ``cache_creation.ephemeral_5m_input_tokens``);
    ``input_tokens`` is the uncached rest, so the three add up to ``P``. ``output_tokens`` as
    for chat (no reasoning tokens). ``max_tokens`` (required) cuts a text reply after that many
    tokens with ``stop_reason`` ``"max_tokens"``; otherwise it is ``"end_turn"``, or
    ``"tool_use"`` for a tool call (never cut). A streamed answer sends ``message_start``
    (usage with ``output_tokens: 1``, as the real API does), ``content_block_start``, ``ping``,
    ``content_block_delta`` (``text_delta`` or ``input_json_delta``), ``content_block_stop``,
    ``message_delta`` (``stop_reason`` and the cumulative usage) and ``message_stop``.
    ``claude-3-5-haiku-latest``, ``claude-3-7-sonnet-latest``, ``claude-sonnet-4-0`` and
    ``claude-haiku-4-5`` answer with their dated snapshot names (``claude-3-5-haiku-20241022``,
    ``claude-3-7-sonnet-20250219``, ``claude-sonnet-4-20250514``,
    ``claude-haiku-4-5-20251001``); other names are echoed.

Answered requests
    ``srv.answered`` lists every API request the server answered with a model's output
    (HTTP 200 on chat, Responses, embeddings and Messages; not ``GET /models``, and never an
    error, injected or not), oldest first, as dicts::

        {"endpoint": "chat" | "responses" | "embeddings" | "messages",
         "model": <the model name it answered with, e.g. "gpt-4o-mini-2024-07-18">,
         "stream": bool, "input_tokens": int, "output_tokens": int,
         "cache_read_tokens": int, "cache_write_tokens": int, "reasoning_tokens": int}

    ``input_tokens`` includes the cached ones, as OpenAI's ``prompt_tokens`` does; for
    Messages it is ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``.
    ``output_tokens`` includes the reasoning tokens (0 for embeddings). A request is logged
    when its answer is decided, before the first byte of it is sent, so whoever has read an
    answer finds it logged; a stream is logged with the usage the server computed even when
    the client did not ask for it (``include_usage``), and a request is logged when it is
    answered even if its client gave up waiting (``demo-slow`` past the client's timeout).
    ``srv.clear_answered()`` empties the log; it keeps the last ``ANSWERED_KEPT`` requests.
    Tests compare it with what tracing recorded: one logged request should be one counted
    LLM call, with these numbers.

Fault injection
    ``srv.fail_next(status, count=1, retry_after=None)`` makes the next ``count`` API requests
    fail; ``srv.set_latency(seconds)`` delays every response (the first chunk of streams);
    ``chunk_delay`` spaces stream chunks. Magic model names need no server handle (they work
    on every endpoint, Anthropic's included):

    * ``demo-error-500``: HTTP 500 ``server_error`` (Anthropic: ``api_error``).
    * ``demo-error-429``: HTTP 429 ``rate_limit_error`` with ``retry-after: 0``.
    * ``demo-slow``: the response is held for 2 s, so a client ``timeout`` below that fires.

    The ``openai`` client ignores a ``retry-after`` of 0 and falls back to its own backoff
    (about 0.5 s, then 1 s); pass a small positive value such as ``0.01`` for fast retries.

Modules
    ``server`` (:class:`DemoServer`, the HTTP handler, :func:`start`, the command line),
    ``openai`` (chat completions, embeddings, Responses, the model list), ``anthropic``
    (Messages), ``faults`` (the test-only fault injection), ``_answers`` (replies and the
    ``answered`` records the APIs share) and ``_common`` (tokens, errors, text helpers, SSE).
"""

from __future__ import annotations

# Besides ``__all__``, the constants and ApiError stay importable from here as before the
# split (``import X as X`` marks a re-export).
from ._common import CACHE_MARKER as CACHE_MARKER
from ._common import SNIPPET_CHARS as SNIPPET_CHARS
from ._common import TOKENS_PER_MESSAGE as TOKENS_PER_MESSAGE
from ._common import ApiError as ApiError
from ._common import count_tokens, response_model
from .anthropic import CACHE_WRITE_MARKER as CACHE_WRITE_MARKER
from .faults import _MAGIC_ERRORS as _MAGIC_ERRORS
from .faults import SLOW_MODEL as SLOW_MODEL
from .faults import SLOW_SECONDS as SLOW_SECONDS
from .openai import EMBEDDING_DIMENSIONS as EMBEDDING_DIMENSIONS
from .openai import MODELS, embedding_vector
from .openai import REASONING_TOKENS as REASONING_TOKENS
from .server import ANSWERED_KEPT as ANSWERED_KEPT
from .server import DemoServer, main, start

__all__ = [
    "MODELS",
    "DemoServer",
    "count_tokens",
    "embedding_vector",
    "main",
    "response_model",
    "start",
]
