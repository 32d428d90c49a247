"""Secret scrubbing: API keys and credentials never reach a DataFrame, a view or a file.

Instrumentations record request headers (``gen_ai.headers`` carries ``Authorization:
Bearer sk-…`` when a caller passes ``extra_headers``) and people paste keys into prompts.
Everything that leaves the collector goes through :func:`scrub_value` first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REDACTED = "[REDACTED]"

# Attribute keys whose whole value is a credential, judged by the key's last segment.
_SECRET_KEY = re.compile(
    r"(?:^|[._-])(authorization|proxy-authorization|api[-_]?key|x-api-key|cookie|set-cookie|"
    r"password|passwd|secret|client[-_]secret|access[-_]token|refresh[-_]token)$",
    re.IGNORECASE,
)



@dataclass(frozen=True)
class Rule:
    """One shape of secret and what replaces it.

    Every rule runs in time linear in the text, and most in far less: a pattern that
    begins with a literal is found by a fast search for that literal, where one that
    begins with ``\b``, a class or ``(?i)`` is tried at every position (~50 ms a megabyte,
    measured; a literal's search ~2 ms). So a word boundary is checked by a lookbehind
    after the literal, and a case-insensitive rule (``lowercase``) runs its lowercase
    pattern over the lowercased text and copies the kept groups from the original. No
    pattern has two unbounded runs that can trade characters (tests/test_attacks.py times
    each on adversarial text).
    """

    pattern: re.Pattern[str]
    replacement: str
    #: matched in the lowercased text; the replacement keeps groups 1..``keep`` as written
    lowercase: bool = False
    keep: int = 0

    def apply(self, text: str, low: str) -> str:
        """``text`` with this rule's matches replaced; ``low`` is ``text.lower()``."""
        if not self.lowercase:
            return self.pattern.sub(self.replacement, text)
        if len(low) != len(text):  # lowercasing moved positions (rare letters): slow path
            return re.compile(self.pattern.pattern, re.IGNORECASE).sub(self._expand, text)
        out: list[str] = []
        done = 0
        for found in self.pattern.finditer(low):
            out += (text[done:found.start()], self._kept(text, found), self.replacement)
            done = found.end()
        return "".join((*out, text[done:])) if out else text

    def _kept(self, text: str, found: re.Match[str]) -> str:
        return "".join(text[found.start(g):found.end(g)] for g in range(1, self.keep + 1))

    def _expand(self, found: re.Match[str]) -> str:
        return self._kept(found.string, found) + self.replacement


def _header(keyword: str) -> Rule:
    """"Authorization: Bearer …", "'api-key': '…'" inside header dumps and JSON."""
    return Rule(re.compile("(" + keyword + r""")(['"]?\s*[:=]\s*['"]?)"""
                           r"""(?:(?:bearer|basic|token)\s+)?[^'"\s,;}]+"""),
                REDACTED, lowercase=True, keep=2)


def _scheme(word: str) -> Rule:
    """"Bearer …", "Basic …" at a word start."""
    return Rule(re.compile(f"({word})(?<![a-z0-9_]{word})(\\s+)[a-z0-9._~+/=-]{{8,}}"),
                REDACTED, lowercase=True, keep=2)


def _key(literal: str, rest: str) -> Rule:
    """A key-shaped string starting with ``literal``, at a word start."""
    boundary = f"(?<![A-Za-z0-9_]{re.escape(literal)})"
    return Rule(re.compile(re.escape(literal) + boundary + rest), REDACTED)


RULES: tuple[Rule, ...] = (
    # "proxy-authorization" is matched from its "authorization"
    *map(_header, ("authorization", "x-api-key", "api[-_]?key", "x-goog-api-key",
                   "cookie")),
    _scheme("bearer"), _scheme("basic"),
    # key-shaped strings from common providers
    _key("sk-", r"(?:ant-|proj-|svcacct-)?[A-Za-z0-9_-]{16,}"),
    _key("AKIA", r"[0-9A-Z]{16}\b"), _key("ASIA", r"[0-9A-Z]{16}\b"),
    _key("AIza", r"[0-9A-Za-z_-]{35}\b"),
    *(_key(f"gh{c}_", r"[A-Za-z0-9]{30,}\b") for c in "pousr"),
    *(_key(f"xox{c}-", r"[A-Za-z0-9-]{10,}\b") for c in "abprs"),
    _key("github_pat_", r"[A-Za-z0-9_]{22,}"),
    _key("hf_", r"[A-Za-z0-9]{30,}\b"),
    # the userinfo of a URL: "http://alice:PASSWORD@host/" (a run of non-separators
    # cannot cross the next "://", so every start scans its own stretch only)
    Rule(re.compile(r"://(?<=[A-Za-z0-9+.-]://)[^/\s@]+@"), "://" + REDACTED + "@"),
    # A JWT: three base64url parts joined by dots. It may start only where a part may
    # (not inside one): with "\beyJ", text like "eyJ-" * n made every "eyJ" a start that
    # scanned the rest of the string, quadratic; now a run of part characters is one start.
    Rule(re.compile(r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."
                    r"[A-Za-z0-9_-]{10,}"), REDACTED),
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
        low = text.lower()
        for rule in RULES:
            changed = rule.apply(result, low)
            if changed is not result:
                result, low = changed, changed.lower()
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


#: values with no text in them: kept as they are
_PLAIN = frozenset({int, float, bool, type(None)})


def scrub_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    # numbers and short strings (most values) skip the calls: the store's writer
    # scrubs every attribute of every span, and the calls were half its time
    return {k: (REDACTED if is_secret_key(k) else v if type(v) in _PLAIN
                or (type(v) is str and len(v) < _SHORTEST_SECRET) else scrub_value(v))
            for k, v in attrs.items()}
