"""Requests- and tokens-per-minute limits in this process: GCRA with reservations.

GCRA (the generic cell rate algorithm) keeps one number, the theoretical arrival time ``tat``
of the next unit. A caller books ``cost`` units by moving ``tat`` forward and sleeps until its
booking is due, so each caller makes one decision and no waiter polls. In any window of ``W``
seconds at most ``W * rate + burst`` units start. The Redis version (``app.llm.shared_rate``)
runs the same arithmetic in a Lua script for all replicas together.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class RateLimit(Protocol):
    """Anything that spaces out units (requests or tokens) to a rate."""

    async def take(self, cost: float) -> None:
        """Return when ``cost`` units may start."""
        ...


def gcra_booking(tat: float, now: float, interval: float, burst: float, cost: float) -> tuple[float, float]:
    """``(wait, new_tat)`` for booking ``cost`` units at ``now``; times in one unit (s or ms).

    ``interval`` is the time one unit takes at the rate; ``burst`` the units that may start at
    once after a quiet spell.
    """
    tat = max(tat, now)
    tolerance = max(0.0, burst - 1) * interval
    wait = max(0.0, tat - tolerance - now)
    return wait, tat + cost * interval


def per_minute(limit_per_minute: float) -> tuple[float, float]:
    """``(interval_seconds, burst_units)`` of a per-minute limit: a burst is one second's worth."""
    return 60.0 / limit_per_minute, max(1.0, limit_per_minute / 60.0)


class LocalRateLimit:
    """A per-minute limit for this process alone."""

    def __init__(self, per_minute_limit: float) -> None:
        if per_minute_limit <= 0:
            raise ValueError("a rate limit must be positive")
        self.limit = per_minute_limit
        self.interval, self.burst = per_minute(per_minute_limit)
        self._tat = 0.0

    async def take(self, cost: float) -> None:
        """Book ``cost`` units now and sleep until they are due."""
        wait, self._tat = gcra_booking(self._tat, time.monotonic(), self.interval, self.burst, cost)
        if wait > 0:
            await asyncio.sleep(wait)
