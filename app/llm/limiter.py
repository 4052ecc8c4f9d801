"""The one limiter per LM backend that every request shares.

A per-request semaphore is not a limit: N concurrent routes would put N times the limit in
flight. This object lives in the application state and every LM call of every route passes
through it. ``SlotLimiter`` is what the judge needs of a limiter, so the in-process one here and
the Redis-backed one shared by replicas (``app.cluster``) are interchangeable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
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

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[None]:
        """Hold one slot for the body; cancellation while waiting or running frees it.

        ``tokens`` is for rate limits layered on top (``app.llm.limits``); a slot is a slot.
        """
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()
