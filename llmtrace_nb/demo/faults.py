"""Test-only fault injection: magic model names, queued HTTP errors, latency and pauses.

``DemoServer`` mixes in :class:`FaultInjection`; the handler calls ``_before_response`` and
``_apply_magic_model`` before it answers, and ``_pause`` between stream chunks.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from ._common import ApiError

SLOW_MODEL = "demo-slow"
SLOW_SECONDS = 2.0
_MAGIC_ERRORS: dict[str, tuple[int, float | None]] = {
    "demo-error-500": (500, None),
    "demo-error-429": (429, 0.0),
}


def _injected_error(status: int, retry_after: float | None) -> ApiError:
    return ApiError(status, f"Demo server: injected HTTP {status} error.", retry_after=retry_after)


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: float | None


class FaultInjection:
    """The controls ``DemoServer`` mixes in; it owns the lock, the queue and the stop event."""

    latency: float
    _lock: threading.Lock
    _failures: deque[_Failure]
    _stopping: threading.Event

    # -- behaviour controls

    def set_latency(self, seconds: float) -> None:
        """Delay every subsequent response (the first chunk, for streams).

        Parameters
        ----------
        seconds : float
            The delay; 0 turns it off. ``stop()`` cuts a delay short.

        Returns
        -------
        None

        Raises
        ------
        ValueError
            ``seconds`` is negative.

        Examples
        --------
        >>> srv.set_latency(0.2)  # doctest: +SKIP
        """
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency = seconds

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next ``count`` API requests with HTTP ``status`` and an error body.

        The body has OpenAI's error shape, or Anthropic's under ``/v1/messages``. Calls
        queue up: ``fail_next(429); fail_next(500)`` fails with 429 first, then 500.

        Parameters
        ----------
        status : int
            The HTTP error status, 400-599.
        count : int, default 1
            How many requests fail.
        retry_after : float, optional
            Seconds (may be fractional) sent as a ``retry-after`` header.

        Returns
        -------
        None

        Raises
        ------
        ValueError
            ``status`` is not 400-599, or ``count`` is negative.

        Examples
        --------
        >>> srv.fail_next(429, retry_after=0.01)  # doctest: +SKIP
        >>> client.chat.completions.create(...)  # retried once, then answered  # doctest: +SKIP
        """
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._failures.extend([_Failure(status, retry_after)] * count)

    def clear_failures(self) -> None:
        """Drop failures queued by :meth:`fail_next` that have not fired yet.

        Returns
        -------
        None
        """
        with self._lock:
            self._failures.clear()

    # -- used by the request handler

    def _pause(self, seconds: float) -> None:
        # An Event wait rather than time.sleep so stop() interrupts it immediately.
        if seconds > 0:
            self._stopping.wait(seconds)

    def _before_response(self) -> None:
        self._pause(self.latency)
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            raise _injected_error(failure.status, failure.retry_after)

    def _apply_magic_model(self, model: str) -> None:
        if model == SLOW_MODEL:
            self._pause(SLOW_SECONDS)
        elif model in _MAGIC_ERRORS:
            raise _injected_error(*_MAGIC_ERRORS[model])
