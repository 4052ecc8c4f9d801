"""Progress notifications of a route called over MCP: chunks judged out of chunks planned.

The route tells its events synchronously (``OnRouteEvent``); notifications are sent by one task
of their own, in order, the latest count only when the route outruns the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from app.routing.judging.outcome import ChunkOutcome
from app.routing.service import RouteEvent

__all__ = ["ProgressRelay", "relayed_progress"]

Report = Callable[[float, float | None, str | None], Awaitable[None]]


class ProgressRelay:
    """Counts a route's chunks and wakes the sender on each event."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self.changed = asyncio.Event()

    def __call__(self, event: RouteEvent) -> None:
        if isinstance(event, ChunkOutcome):
            self.done += 1
        else:  # the plan (twice with a first pass): more chunks to judge
            self.total += event.chunks
        self.changed.set()

    async def send(self, report: Report) -> None:
        """Report every change until cancelled."""
        while True:
            await self.changed.wait()
            self.changed.clear()
            await report(self.done, self.total or None, f"{self.done} of {self.total} chunks judged")


@contextlib.asynccontextmanager
async def relayed_progress(report: Report) -> AsyncIterator[ProgressRelay]:
    """A relay whose counts ``report`` sends while the block runs."""
    relay = ProgressRelay()
    sender = asyncio.create_task(relay.send(report), name="tablerouter-mcp-progress")
    try:
        yield relay
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        if relay.changed.is_set():  # the last chunks landed after the sender's last report
            await report(relay.done, relay.total or None, f"{relay.done} of {relay.total} chunks judged")
