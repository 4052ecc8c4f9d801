"""The one limiter per LM backend that every request shares.

A per-request semaphore is not a limit: N concurrent routes would put N times the limit in
flight. This object lives in the application state and every LM call of every route passes
through it. ``SlotLimiter`` is what the judge needs of a limiter, so the in-process one here and
the Redis-backed one shared by replicas (``app.llm.failover_limiter``) are interchangeable.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol


class SlotLimiter(Protocol):
    """Anything that bounds LM calls: hold ``slot(tokens)`` around one call."""

    def slot(self, tokens: int = 0) -> AbstractAsyncContextManager[None]:
        """Wait for room for one call of about ``tokens`` tokens; hold it for the body."""
        ...


class LimiterLoad(Protocol):
    """How busy a limiter is, as hedging and back-pressure read it."""

    limit: int
    in_flight: int
    waiting: int


class Limiter:
    """A bounded count of LM calls in flight, with counters for observability."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.max_in_flight = 0
        self.waiting = 0

    def slot(self, tokens: int = 0) -> AbstractAsyncContextManager[None]:
        """Hold one slot for the body; cancellation while waiting or running frees it.

        ``tokens`` is for rate limits layered on top (``app.llm.limits``); a slot is a slot.
        """
        return _Slot(self)


class _Slot:
    """One hold of a ``Limiter`` slot: a plain context manager, since every LM call of every
    route takes one (a generator-based one costs several times more per call)."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        limiter = self._limiter
        limiter.waiting += 1
        try:
            await limiter._slots.acquire()
        finally:
            limiter.waiting -= 1
        limiter.in_flight += 1
        limiter.max_in_flight = max(limiter.max_in_flight, limiter.in_flight)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        limiter = self._limiter
        limiter.in_flight -= 1
        limiter._slots.release()
