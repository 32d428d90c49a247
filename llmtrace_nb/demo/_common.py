"""Pieces every route shares: the JSON alias, demo tokens, model snapshot names, errors in
OpenAI's and Anthropic's shapes, untrusted-field coercion, text helpers and SSE framing."""

from __future__ import annotations

import json
import math
import re
from typing import Any

JSON = dict[str, Any]

# The real API answers with the dated snapshot; tracing code must cope with the mismatch.
_MODEL_SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}

TOKENS_PER_MESSAGE = 4
CACHE_MARKER = "[cached]"
SNIPPET_CHARS = 60

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_RE = re.compile(r"\w+")
# Words keep their trailing whitespace (and leading whitespace is its own piece) so the
# streamed pieces join back to exactly the non-streamed text.
_STREAM_PIECE_RE = re.compile(r"\S+\s*|\s+")


def count_tokens(text: str) -> int:
    """Count demo tokens: each run of word characters, plus each other non-space character.

    Not a real BPE tokenizer, just a stable rule tests can reproduce: every usage the
    server reports is built from it (see "Token accounting" in ``llmtrace_nb.demo``).

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    int
        The number of runs of ``\\w`` plus the number of other non-space characters.

    Examples
    --------
    >>> from llmtrace_nb.demo import count_tokens
    >>> count_tokens("Hello, world!")
    4
    """
    return len(_TOKEN_RE.findall(text))


def response_model(requested: str) -> str:
    """The model name the server reports for a requested model.

    Parameters
    ----------
    requested : str
        The ``model`` of the request.

    Returns
    -------
    str
        The dated snapshot name for ``gpt-4o-mini``, ``gpt-4o`` and the Claude aliases
        the ``llmtrace_nb.demo`` docstring lists; any other name unchanged.

    Examples
    --------
    >>> from llmtrace_nb.demo import response_model
    >>> response_model("gpt-4o-mini")
    'gpt-4o-mini-2024-07-18'
    >>> response_model("my-model")
    'my-model'
    """
    return _MODEL_SNAPSHOTS.get(requested, requested)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered as OpenAI-style JSON with the given HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def body(self) -> JSON:
        error_type, code = _error_kind(self.status)
        return {
            "error": {
                "message": self.message,
                "type": error_type,
                "param": self.param,
                "code": code,
            }
        }

    def anthropic_body(self, request_id: str) -> JSON:
        """The same error in the Anthropic Messages API's shape."""
        message = f"{self.param}: {self.message}" if self.param else self.message
        return {
            "type": "error",
            "error": {"type": _anthropic_error_type(self.status), "message": message},
            "request_id": request_id,
        }


_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "unknown_url"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def _error_kind(status: int) -> tuple[str, str | None]:
    if status in _ERROR_KINDS:
        return _ERROR_KINDS[status]
    if status >= 500:
        return ("server_error", "server_error")
    return ("invalid_request_error", None)


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _anthropic_error_type(status: int) -> str:
    if status in _ANTHROPIC_ERROR_TYPES:
        return _ANTHROPIC_ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


# --------------------------------------------------------------------------- shared helpers


def _text_of(content: Any) -> str:
    """Plain text of a message ``content``: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _snippet(text: str) -> str:
    return text.strip()[:SNIPPET_CHARS] or "(empty)"


def _last_word(text: str) -> str:
    words = _WORD_RE.findall(text)
    return words[-1] if words else "demo"


def _stream_pieces(text: str) -> list[str]:
    return _STREAM_PIECE_RE.findall(text) or [text]


def _fragments(text: str, parts: int = 4) -> list[str]:
    """Split ``text`` into up to ``parts`` slices, as argument deltas arrive from the API."""
    size = max(1, math.ceil(len(text) / parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _require(condition: bool, message: str, param: str | None) -> None:
    if not condition:
        raise ApiError(400, message, param=param)


# Request fields are untrusted JSON: these coerce anything unexpected to an empty value.
def _as_dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _sse(data: JSON | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()
