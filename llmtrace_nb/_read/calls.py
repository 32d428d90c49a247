"""Same call: the GenAI spans that describe one LLM call, and the one that counts.

Frameworks (pydantic-ai, openai-agents, LangChain, openlit, logfire, …) trace their model
calls, and the provider's client is traced too: one HTTP call becomes two or three spans.
Every span is kept; this module decides which of them describe the same call, so that
every total counts the call once. Two GenAI spans (kind ``llm`` or ``embedding``) of one
*place* — a traced cell, else a trace — describe the same call when

- they carry the same response id; or
- one is an ancestor of the other (pydantic-ai, openai-agents, openlit and logfire nest
  the client's span in theirs) and they do not disagree: on the response id, the model
  family, the token counts they both give, or time (their intervals overlap); or
- neither is an ancestor of the other, but one lies within the other in time, and they
  agree on the model family and on the token counts they both give (OpenInference's
  LangChain spans never become the current span, so the client's span of the same call
  hangs elsewhere in the cell's tree; the Anthropic SDK and its instrumentor make
  siblings).

One instrumentation traces a call once: a call holds at most one span per
instrumentation scope that reports usage, and one that does not (logfire's request span
and its stream log). So parallel calls from one client never merge, however alike.

Of a group, the span that started first counts (the outermost: a framework's span
encloses the client's); the others are its duplicates, and :func:`merged` gives the
counted row the most complete fields of the group.

The matcher is incremental: spans are added in the order they end, and ``add`` says
which groups changed, so the DataFrames convert only new spans and the live line keeps
running sums. Children end before their parents, so when the later span of a pair
arrives, every span between the two in the tree has arrived too.
"""

from __future__ import annotations

import functools
import math
import re
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .values import is_missing

#: how far up (or down) the tree a partner is looked for
MAX_HOPS = 16
#: how many earlier calls of a place are looked at for one lying within a new one
MAX_SCAN = 256
#: how many of a place's latest calls, and of its latest spans' links, are kept to find
#: partners in. The spans of one call end close together (a framework's span right after
#: the client's), so a partner more than this many calls back would take a thousand
#: calls of one cell running at once; past that the state of a 100k-call cell would
#: grow without bound (the frames keep the matcher as long as the rows).
KEEP_CALLS = 1024
KEEP_LINKS = 4 * KEEP_CALLS

_PROVIDER_PREFIX = re.compile(r"^[\w.-]+[:/]")
_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|@\d{8}|-latest|-preview)+$")


def model_family(model: Any) -> str | None:
    """``gpt-4o-mini-2024-07-18``, ``openai:gpt-4o-mini`` and ``GPT-4o-mini`` are one
    family; ``gpt-4o`` and ``gpt-4o-mini`` are not."""
    if not isinstance(model, str) or not model.strip():
        return None
    return _family(model)


@functools.lru_cache(maxsize=1024)
def _family(model: str) -> str:
    text = _PROVIDER_PREFIX.sub("", model.strip().lower())
    return _DATE_SUFFIX.sub("", text) or text


@dataclass(eq=False, slots=True)
class CallSpan:
    """What the matcher needs of one GenAI span."""

    key: Any  # the caller's handle: a row number, a span id
    span_id: Hashable
    parent_id: Hashable | None
    #: where the call is looked for partners: a cell, else the trace
    place: Hashable
    scope: str | None
    response_id: str | None
    family: str | None
    input_tokens: int | None
    output_tokens: int | None
    start: int | None
    end: int | None
    group: CallGroup | None = None

    @property
    def has_usage(self) -> bool:
        return self.input_tokens is not None or self.output_tokens is not None


@dataclass(eq=False, slots=True)
class CallGroup:
    """The spans of one call; ``counted`` is the one every total counts."""

    members: list[CallSpan] = field(default_factory=list)

    @property
    def counted(self) -> CallSpan:
        # the outermost: it started first (a parent starts before its child); at equal
        # starts the longer one encloses the other
        return min(self.members, key=_outer_first)

    def duplicates(self) -> list[CallSpan]:
        counted = self.counted
        return [s for s in self.members if s is not counted]

    def innermost_first(self) -> list[CallSpan]:
        return sorted(self.members, key=_outer_first, reverse=True)

    def admits(self, spans: Iterable[CallSpan]) -> bool:
        """Whether the spans can join: one span per scope with usage, one without."""
        seen = {(m.scope, m.has_usage) for m in self.members if m.scope is not None}
        for span in spans:
            if span.scope is not None:
                if (span.scope, span.has_usage) in seen:
                    return False
                seen.add((span.scope, span.has_usage))
        return True


def _outer_first(s: CallSpan) -> tuple[float, float, str]:
    return (s.start if s.start is not None else math.inf,
            -(s.end if s.end is not None else -math.inf), str(s.span_id))


@dataclass(slots=True)
class _Place:
    parents: dict[Hashable, Hashable | None] = field(default_factory=dict)
    children: dict[Hashable, list[Hashable]] = field(default_factory=dict)
    #: the linked span ids in the order they arrived, to let the oldest go (``parents``
    #: keeps that order too, but a dict finds its first key by skipping every deleted
    #: one before it: evicting from the front that way is quadratic)
    linked: deque[Hashable] = field(default_factory=deque)
    calls: dict[Hashable, CallSpan] = field(default_factory=dict)
    by_response: dict[str, CallSpan] = field(default_factory=dict)
    #: the calls in the order they arrived (ended), for the scan by time
    recent: deque[CallSpan] = field(default_factory=deque)
    last_key: Any = None


class SameCalls:
    """Groups GenAI spans into calls as they arrive. Not thread-safe: one owner each."""

    def __init__(self) -> None:
        self._places: OrderedDict[Hashable, _Place] = OrderedDict()

    def add(self, calls: Sequence[CallSpan],
            others: Iterable[tuple[Hashable, Hashable | None, Hashable]] = ()
            ) -> set[CallGroup]:
        """Add GenAI spans (in the order they ended) and the (span id, parent id, place)
        of the other spans that arrived with them; returns the groups of more than one
        span that changed."""
        for call in calls:
            self._place_of(call.place, call.key)
        for span_id, parent_id, place in others:
            found = self._places.get(place)
            if found is not None:
                _link(found, span_id, parent_id)
        changed: set[CallGroup] = set()
        for call in calls:
            place = self._place_of(call.place, call.key)
            _link(place, call.span_id, call.parent_id)
            group = _join(place, call)
            if len(group.members) > 1:
                changed.add(group)
        return changed

    def __bool__(self) -> bool:
        return bool(self._places)

    def knows(self, place: Hashable) -> bool:
        """Whether spans of ``place`` were added (so its new spans must be too)."""
        return place in self._places

    def forget_before(self, key: Any) -> None:
        """Drop the places whose spans all came before ``key`` (evicted rows)."""
        while self._places:
            place_id, place = next(iter(self._places.items()))
            if place.last_key is None or place.last_key >= key:
                break
            del self._places[place_id]

    def _place_of(self, place_id: Hashable, key: Any) -> _Place:
        place = self._places.get(place_id)
        if place is None:
            place = self._places[place_id] = _Place()
        else:
            self._places.move_to_end(place_id)
        place.last_key = key
        return place


def _link(place: _Place, span_id: Hashable, parent_id: Hashable | None) -> None:
    if span_id not in place.parents:
        place.parents[span_id] = parent_id
        place.children.setdefault(parent_id, []).append(span_id)
        place.linked.append(span_id)
        if len(place.linked) > KEEP_LINKS:
            _unlink(place, place.linked.popleft())


def _unlink(place: _Place, span_id: Hashable) -> None:
    parent = place.parents.pop(span_id, None)
    siblings = place.children.get(parent)
    if siblings is not None:
        siblings.remove(span_id)  # the oldest: found at the front
        if not siblings:
            del place.children[parent]


def _remember(place: _Place, call: CallSpan) -> None:
    place.calls[call.span_id] = call
    if call.response_id is not None:
        place.by_response.setdefault(call.response_id, call)
    place.recent.append(call)
    if len(place.recent) > KEEP_CALLS:
        old = place.recent.popleft()
        if place.calls.get(old.span_id) is old:
            del place.calls[old.span_id]
        if old.response_id is not None and place.by_response.get(old.response_id) is old:
            del place.by_response[old.response_id]


def _join(place: _Place, call: CallSpan) -> CallGroup:
    """Put ``call`` into the group of its call (a new one if it is the first span)."""
    group = CallGroup([call])
    call.group = group
    for partner in _partners(place, call):
        other = partner.group
        if other is None or other is group or not other.admits(group.members):
            continue
        for member in group.members:
            member.group = other
        other.members.extend(group.members)
        group = other
    _remember(place, call)
    return group


def _partners(place: _Place, call: CallSpan) -> Iterator[CallSpan]:
    """Spans that describe the same call as ``call``, the surest first."""
    if call.response_id is not None:
        same = place.by_response.get(call.response_id)
        if same is not None:
            yield same
    for other in _ancestors(place, call):
        if _agree(call, other):
            yield other
            break  # the nearest; its group holds any further one
    for other in _descendants(place, call):
        if _agree(call, other):
            yield other
    for other in _within(place, call):
        if _agree(call, other) and call.family is not None and other.family is not None:
            yield other


def _ancestors(place: _Place, call: CallSpan) -> Iterator[CallSpan]:
    parent = call.parent_id
    for _ in range(MAX_HOPS):
        if parent is None:
            return
        found = place.calls.get(parent)
        if found is not None:
            yield found
        parent = place.parents.get(parent)


def _descendants(place: _Place, call: CallSpan) -> Iterator[CallSpan]:
    level = [call.span_id]
    for _ in range(MAX_HOPS):
        level = [c for span_id in level for c in place.children.get(span_id, ())]
        if not level:
            return
        for span_id in level:
            found = place.calls.get(span_id)
            if found is not None:
                yield found


def _within(place: _Place, call: CallSpan) -> Iterator[CallSpan]:
    """Earlier calls lying within ``call`` in time, or ``call`` within them.

    Calls arrive as they end, so those that overlap ``call`` are the latest ones:
    the scan stops at the first call that ended before ``call`` started.
    """
    if call.start is None or call.end is None:
        return
    recent = place.recent
    for i in range(len(recent) - 1, max(len(recent) - MAX_SCAN, 0) - 1, -1):
        other = recent[i]
        if other.end is None or other.start is None:
            continue
        if other.end < call.start:
            return
        inside = call.start <= other.start and other.end <= call.end
        around = other.start <= call.start and call.end <= other.end
        if inside or around:
            yield other


def _agree(a: CallSpan, b: CallSpan) -> bool:
    """Nothing the two spans both say tells them apart."""
    if a.response_id is not None and b.response_id is not None:
        return a.response_id == b.response_id
    if a.family is not None and b.family is not None and a.family != b.family:
        return False
    for x, y in ((a.input_tokens, b.input_tokens), (a.output_tokens, b.output_tokens)):
        if x is not None and y is not None and x != y:
            return False
    if None in (a.start, a.end, b.start, b.end):
        return True
    return a.start <= b.end and b.start <= a.end  # type: ignore[operator]


# -- the counted row's fields ----------------------------------------------------------------

#: token counts and time to first token: the innermost span's that gives one (the client's,
#: read off the provider's answer), else the next one out
INNER_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
                "cache_write_tokens", "reasoning_tokens", "ttft_ms")
#: the counted span's own value, else the innermost one's that has one
OUTER_FIELDS = ("provider", "request_model", "finish_reasons", "input_messages",
                "output_messages", "given_cost")


def _specific(model: str) -> tuple[bool, int]:
    # a dated snapshot says more than its alias; else the longer name
    return (bool(_DATE_SUFFIX.search(model)), len(model))


def merged(counted: Mapping[str, Any], inner_first: Sequence[Mapping[str, Any]]
           ) -> dict[str, Any]:
    """The fields of a call: ``counted`` is the counted span's row, ``inner_first`` the
    rows of all the call's spans (the counted one included), the innermost first.

    Token counts and TTFT come from the innermost span that gives them, the response
    model is the most specific (a dated snapshot over its alias), streaming is true if
    any span saw a stream, and the rest is the counted span's own value unless it has
    none.
    """
    def first(name: str, rows: Sequence[Mapping[str, Any]]) -> Any:
        return next((r.get(name) for r in rows if not is_missing(r.get(name))), counted.get(name))

    out: dict[str, Any] = {name: first(name, inner_first) for name in INNER_FIELDS}
    outer = [counted, *inner_first]
    out.update({name: first(name, outer) for name in OUTER_FIELDS})
    models = [str(r["response_model"]) for r in inner_first
              if not is_missing(r.get("response_model"))]
    out["response_model"] = max(models, key=_specific) if models else counted.get(
        "response_model")
    flags = [r.get("is_streaming") for r in outer if not is_missing(r.get("is_streaming"))]
    out["is_streaming"] = (True if True in flags else flags[0]) if flags else counted.get(
        "is_streaming")
    out["model"] = out["response_model"] if not is_missing(out["response_model"]) else out[
        "request_model"]
    return out
