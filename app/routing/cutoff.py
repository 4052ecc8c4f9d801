"""When the server stops: routes in flight answer with what finished, before it stops waiting.

The server gives its requests a graceful-shutdown timeout and then cancels them with no answer.
``RouteCutoff.begin`` is its notice (``app.connections``): every route's fan-out stops waiting
for its chunks a little before the timeout - the reserve is for merging the votes and sending
the answer - and the route answers as at its deadline: ``partial``, with the unjudged tables
listed, or lexically when no chunk had answered yet.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["RouteCutoff"]

# Kept back from the shutdown timeout to merge, answer and close: a quarter of it, at most 2 s.
RESERVE_SHARE = 0.25
MAX_RESERVE_S = 2.0


class RouteCutoff:
    """The moment (once the server is stopping) by which every route's LM calls must be over."""

    def __init__(self) -> None:
        self._at: float | None = None
        self._begun = asyncio.Event()

    @property
    def begun(self) -> bool:
        return self._at is not None

    def begin(self, within_s: float) -> None:
        """The server stops within ``within_s`` seconds: routes stop their calls in time to answer."""
        if self._at is None:
            self._at = time.monotonic() + within_s - min(MAX_RESERVE_S, RESERVE_SHARE * within_s)
            self._begun.set()

    async def reached(self) -> None:
        """Return once the server is stopping and the routes' time is up."""
        await self._begun.wait()
        assert self._at is not None
        await asyncio.sleep(max(0.0, self._at - time.monotonic()))
