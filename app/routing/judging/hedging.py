"""Hedged requests: a call still running after the usual latency is sent once more.

"The Tail at Scale" (Dean and Barroso): with dozens of calls per route, one slow call makes
the route slow. A second copy of the call, sent once the first has run longer than the p95
of recent calls, usually answers in a median time; the first answer wins and the other is
cancelled, so its limiter slot is freed. The caller bounds how many hedges go out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["hedged"]

T = TypeVar("T")
Attempt = Callable[[asyncio.Event | None], Awaitable[T]]


async def _first_success(running: set[asyncio.Future[T]]) -> T:
    """The first result among ``running``; the last error when every attempt fails."""
    while True:
        done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        errors = [task.exception() for task in done]  # retrieved, so asyncio logs nothing
        for task, error in zip(done, errors, strict=True):
            if error is None:
                return task.result()
        if not running:
            raise next(e for e in errors if e is not None)


async def hedged(
    attempt: Attempt[T],
    hedge_after_s: float | None,
    may_hedge: Callable[[], bool],
    on_hedge: Callable[[], None],
) -> T:
    """Run ``attempt``; hedge it once after ``hedge_after_s`` on the wire if ``may_hedge()``.

    ``attempt`` gets an event to set when its call is on the wire (past the limiter), so time
    spent queueing is not taken for slowness. With ``hedge_after_s`` None it simply runs once.
    """
    if hedge_after_s is None:
        return await attempt(None)
    started = asyncio.Event()
    first: asyncio.Future[T] = asyncio.ensure_future(attempt(started))
    running: set[asyncio.Future[T]] = {first}
    try:
        # An attempt that ends before it got on the wire (breaker open) must not leave us waiting.
        first.add_done_callback(lambda _: started.set())
        await started.wait()
        if not first.done():
            await asyncio.wait({first}, timeout=hedge_after_s)
        if first.done() or not may_hedge():
            return await first
        on_hedge()
        running.add(asyncio.ensure_future(attempt(None)))
        return await _first_success(set(running))
    finally:
        losers = [task for task in running if not task.done()]
        for task in losers:
            task.cancel()
        # Wait for the losers to unwind, so their limiter slots are free when we return.
        await asyncio.gather(*losers, return_exceptions=True)
        # An attempt that failed just as we were cancelled (the route's deadline) ends done, not
        # among the losers: read its error, or asyncio logs "exception was never retrieved".
        for task in running:
            if not task.cancelled():
                task.exception()
