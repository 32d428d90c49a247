"""Secret scrubbing: API keys and credentials never reach a DataFrame, a view or a file.

Instrumentations record request headers (``gen_ai.headers`` carries ``Authorization:
Bearer sk-…`` when a caller passes ``extra_headers``) and people paste keys into prompts.
Everything that leaves the collector goes through :func:`scrub_value` first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

# Attribute keys whose whole value is a credential, judged by the key's last segment.
_SECRET_KEY = re.compile(
    r"(?:^|[._-])(authorization|proxy-authorization|api[-_]?key|x-api-key|cookie|set-cookie|"
    r"password|passwd|secret|client[-_]secret|access[-_]token|refresh[-_]token)$",
    re.IGNORECASE,
)


def _header(keyword: str) -> tuple[re.Pattern[str], str]:
    """"Authorization: Bearer …", "'api-key': '…'" inside header dumps and JSON.

    One pattern per keyword, each starting with it: a search for a literal runs many
    times faster than one for an alternation of them (~100 ms on 1 MB, measured).
    """
    return (re.compile(r"(?i)(" + keyword + r""")(['"]?\s*[:=]\s*['"]?)"""
                       r"""(?:(?:bearer|basic|token)\s+)?[^'"\s,;}]+"""),
            r"\1\2" + REDACTED)


# Every pattern runs in time linear in the text (tests/test_scrub.py times each on 1 MB
# of adversarial text): no two unbounded runs that can trade characters, and a match can
# start only where its first part can.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "proxy-authorization" is matched from its "authorization"
    *map(_header, ("authorization", "x-api-key", "api[-_]?key", "x-goog-api-key", "cookie")),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # key-shaped strings from common providers
    (re.compile(r"\bsk-(?:ant-|proj-|svcacct-)?[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"), REDACTED),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), REDACTED),
    # the userinfo of a URL: "http://alice:PASSWORD@host/" (a run of non-separators
    # cannot cross the next "://", so every start scans its own stretch only)
    (re.compile(r"(?<=[A-Za-z0-9+.-])://[^/\s@]+@"), "://" + REDACTED + "@"),
    # A JWT: three base64url parts joined by dots. It may start only where a part may
    # (not inside one): with "\beyJ", text like "eyJ-" * n made every "eyJ" a start that
    # scanned the rest of the string, quadratic; now a run of part characters is one start.
    (re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
     REDACTED),
)

# Cheap pre-check so the regexes run only on strings that could hold a secret: every
# pattern above contains one of these (lowercased). Plain substring search is many times
# faster than a case-insensitive alternation on long texts.
_NEEDLES = ("sk-", "akia", "asia", "aiza", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox",
            "github_pat_", "hf_", "eyj", "bearer", "basic", "authorization", "apikey",
            "api-key", "api_key", "cookie", "://")


def might_hold_secret(text: str) -> bool:
    low = text.lower()
    return any(needle in low for needle in _NEEDLES)


#: no pattern matches fewer characters than this ("api_key=abc" is the shortest shape)
_SHORTEST_SECRET = 10
_CACHE_SIZE = 8192
_cache: dict[str, str] = {}


def scrub_text(text: str) -> str:
    if len(text) < _SHORTEST_SECRET:
        return text
    # Attribute values repeat (models, operations, URLs, system prompts): remember the
    # verdict for short strings rather than searching them again for every span.
    cached = _cache.get(text) if len(text) <= 512 else None
    if cached is not None:
        return cached
    result = text
    if might_hold_secret(text):
        for pattern, replacement in _PATTERNS:
            result = pattern.sub(replacement, result)
    if len(text) <= 512:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[text] = result
    return result


def scrub_value(value: Any) -> Any:
    """Scrub strings, and strings inside lists, tuples and dicts."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_value(v) for v in value)
    if isinstance(value, Mapping):
        return {k: (REDACTED if is_secret_key(str(k)) else scrub_value(v))
                for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def scrub_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if is_secret_key(k) else scrub_value(v)) for k, v in attrs.items()}
