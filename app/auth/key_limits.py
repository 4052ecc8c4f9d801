"""Per-key limits: routes per minute (a token bucket) and LM tokens per UTC day.

``KeyLimiter`` is what the API uses: ``admit`` before routes start (the rate, and whether the
day's budget is spent), ``spend`` when a route ends (its LM tokens). Two implementations:

- ``KeyLimits`` (here) keeps the counts in this process. Alone, each worker or replica holds
  its own counts, so a key may get up to that many times its rate. The day's budget survives a
  restart: start-up seeds it from the route log (``seed``).
- ``app.auth.shared_key_limits.SharedKeyLimits`` keeps them in Redis for all replicas
  together and falls back to a ``KeyLimits`` while Redis is unreachable or erring.

A route is counted when it starts (the rate) and its LM tokens when it ends (the budget):
routes already running when the budget runs out may overshoot it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from app.auth.principal import Principal

__all__ = [
    "KeyLimitError",
    "KeyLimiter",
    "KeyLimits",
    "budget_of",
    "budget_spent",
    "part_of",
    "rate_of",
    "rate_refused",
    "too_many_at_once",
    "utc_day",
]

SECONDS_PER_MINUTE = 60.0


class KeyLimitError(Exception):
    """A key is over one of its limits; it may try again after ``retry_after_s``."""

    def __init__(self, detail: str, retry_after_s: int, kind: str) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        self.kind = kind  # "rate" or "tokens"


class KeyLimiter(Protocol):
    """What the API asks of the per-key limits."""

    async def admit(self, principal: Principal, routes: int = 1) -> None:
        """Count ``routes`` starting for ``principal``; KeyLimitError if over its rate or budget."""

    async def spend(self, principal: Principal, tokens: int) -> None:
        """Add the LM tokens a route of ``principal`` used to today's count."""


def utc_day(now: datetime | None = None) -> str:
    """The UTC day of ``now`` (default: now) as YYYY-MM-DD: the budget's period."""
    return (now or datetime.now(UTC)).date().isoformat()


def rate_of(principal: Principal, default: int) -> int:
    """The key's routes per minute (0: unlimited)."""
    return default if principal.rate_limit is None else principal.rate_limit


def budget_of(principal: Principal, default: int) -> int:
    """The key's LM tokens per UTC day (0: unlimited)."""
    return default if principal.daily_tokens is None else principal.daily_tokens


def part_of(limit: int, share: int) -> int:
    """One of ``share`` replicas' part of ``limit`` (0: unlimited stays unlimited), at least 1."""
    return limit if limit <= 0 or share <= 1 else max(1, math.ceil(limit / share))


def too_many_at_once(routes: int, rate: int) -> KeyLimitError:
    """More routes at once than the rate allows in a minute: they would never fit."""
    return KeyLimitError(
        f"{routes} routes at once are more than this key's limit of {rate} per minute",
        int(SECONDS_PER_MINUTE),
        "rate",
    )


def rate_refused(rate: int, wait_s: float) -> KeyLimitError:
    """The key's rate is reached; ``wait_s`` until the routes asked for fit."""
    return KeyLimitError(
        f"this key's limit of {rate} routes per minute is reached", max(1, math.ceil(wait_s)), "rate"
    )


def budget_spent(budget: int) -> KeyLimitError:
    """The key's tokens for today are spent; it may try again at 00:00 UTC."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return KeyLimitError(
        f"this key's budget of {budget} LM tokens per day is spent (resets at 00:00 UTC)",
        max(1, math.ceil((midnight - now).total_seconds())),
        "tokens",
    )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class KeyLimits:
    """The rate and token counts of every key, in this process."""

    def __init__(self, default_rate: int, default_daily_tokens: int) -> None:
        self.default_rate = default_rate
        self.default_tokens = default_daily_tokens
        self._buckets: dict[str, _Bucket] = {}
        self._spent: dict[str, tuple[str, int]] = {}  # key id → (UTC day, tokens spent)

    def seed(self, day: str, spent: Mapping[str, int]) -> None:
        """Start ``day``'s counts at ``spent`` (key id → tokens), as the route log has them."""
        for key_id, tokens in spent.items():
            self._spent[key_id] = (day, tokens)

    def spent_today(self, key_id: str) -> int:
        """The LM tokens ``key_id`` spent today, as far as this process knows."""
        day, spent = self._spent.get(key_id, ("", 0))
        return spent if day == utc_day() else 0

    async def admit(self, principal: Principal, routes: int = 1, share: int = 1) -> None:
        """Count ``routes`` starting for ``principal``; KeyLimitError if over its rate or budget.

        ``share``: how many replicas split the key's limits, each holding its part (while the
        counts they share are unreachable).
        """
        if not principal.limited or principal.key_id is None:
            return
        budget = part_of(budget_of(principal, self.default_tokens), share)
        if budget > 0 and self.spent_today(principal.key_id) >= budget:
            raise budget_spent(budget)
        self._take(principal.key_id, part_of(rate_of(principal, self.default_rate), share), routes)

    def _take(self, key_id: str, rate: int, routes: int) -> None:
        if rate <= 0:
            return
        if routes > rate:
            raise too_many_at_once(routes, rate)
        now = time.monotonic()
        per_second = rate / SECONDS_PER_MINUTE
        bucket = self._buckets.setdefault(key_id, _Bucket(float(rate), now))
        bucket.tokens = min(float(rate), bucket.tokens + (now - bucket.at) * per_second)
        bucket.at = now
        if bucket.tokens < routes:
            raise rate_refused(rate, (routes - bucket.tokens) / per_second)
        bucket.tokens -= routes

    async def spend(self, principal: Principal, tokens: int) -> None:
        """Add the LM tokens a route of ``principal`` used to today's count."""
        if not principal.limited or principal.key_id is None or tokens <= 0:
            return
        self._spent[principal.key_id] = (utc_day(), self.spent_today(principal.key_id) + tokens)
