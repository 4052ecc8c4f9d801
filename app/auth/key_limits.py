"""Per-key limits: routes per minute (a token bucket), LM tokens and LM dollars per UTC day.

``KeyLimiter`` is what the API uses: ``admit`` before routes start (the rate, and whether the
day's token or dollar budget is spent), ``spend`` when a route ends (its LM tokens, and its
dollars when the LM's prices are known). Dollars are counted as whole micro-dollars, so the
in-process and the Redis counts add up the same way. Two implementations:

- ``KeyLimits`` (here) keeps the counts in this process. Alone, each worker or replica holds
  its own counts, so a key may get up to that many times its rate. The day's budget survives a
  restart: start-up seeds it from the route log (``seed``).
- ``app.auth.shared_key_limits.SharedKeyLimits`` keeps them in Redis for all replicas
  together and falls back to a ``KeyLimits`` while Redis is unreachable or erring.

A route is counted when it starts (the rate); before its fan-out it holds its planned LM
tokens and dollars against the day's budgets (``hold``, ``app.auth.key_holds``), and when it
ends the hold is settled to what it really spent. So routes running at once - a batch, a burst,
streams - share what is left of the day instead of each spending as if alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from app.auth.key_holds import KeyHold, LocalHold, LocalHolds, Spend, granted
from app.auth.principal import Principal
from app.routing.plan import CALL_OVERHEAD_TOKENS
from app.routing.token_hold import Held

__all__ = [
    "MICRO_USD",
    "KeyLimitError",
    "KeyLimiter",
    "KeyLimits",
    "budget_of",
    "budget_spent",
    "micro_usd",
    "part_of",
    "rate_of",
    "rate_refused",
    "spent_at",
    "too_many_at_once",
    "until_midnight_s",
    "usd_budget_of",
    "usd_budget_spent",
    "utc_day",
]

SECONDS_PER_MINUTE = 60.0
MICRO_USD = 1_000_000  # micro-dollars per dollar


class KeyLimitError(Exception):
    """A key is over one of its limits; it may try again after ``retry_after_s``."""

    def __init__(self, detail: str, retry_after_s: int, kind: str) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        self.kind = kind  # "rate", "tokens" or "usd"


class KeyLimiter(Protocol):
    """What the API asks of the per-key limits."""

    async def admit(self, principal: Principal, routes: int = 1) -> None:
        """Count ``routes`` starting for ``principal``; KeyLimitError if over its rate or budget."""

    async def spend(self, principal: Principal, tokens: int, cost_usd: float | None) -> None:
        """Add a route's LM tokens and dollars (None: prices unknown) to ``principal``'s day."""

    def hold(self, principal: Principal, route_id: str) -> KeyHold | None:
        """Route ``route_id``'s hold on ``principal``'s daily budgets; None when it has none."""


def utc_day(now: datetime | None = None) -> str:
    """The UTC day of ``now`` (default: now) as YYYY-MM-DD: the budget's period."""
    return (now or datetime.now(UTC)).date().isoformat()


def rate_of(principal: Principal, default: int) -> int:
    """The key's routes per minute (0: unlimited)."""
    return default if principal.rate_limit is None else principal.rate_limit


def budget_of(principal: Principal, default: int) -> int:
    """The key's LM tokens per UTC day (0: unlimited)."""
    return default if principal.daily_tokens is None else principal.daily_tokens


def usd_budget_of(principal: Principal, default: float) -> int:
    """The key's LM dollars per UTC day, in micro-dollars (0: unlimited)."""
    dollars = default if principal.daily_usd is None else principal.daily_usd
    # A budget under half a micro-dollar is still a budget, not "unlimited".
    return max(1, micro_usd(dollars)) if dollars > 0 else 0


def micro_usd(dollars: float | None) -> int:
    """``dollars`` as whole micro-dollars, rounded (None: prices unknown, 0)."""
    return 0 if dollars is None or dollars <= 0 else round(dollars * MICRO_USD)


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


def spent_at(budget: int) -> int:
    """The tokens at which a day's ``budget`` counts as spent: less than one judge call is left.

    A route holds its planned tokens before its calls, so a day ends a few tokens short of its
    budget; admitting routes into that remainder would only refuse each of them later.
    """
    return max(1, budget - CALL_OVERHEAD_TOKENS + 1)


def until_midnight_s() -> int:
    """Seconds until 00:00 UTC, when the day's budgets start again (at least 1)."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))


def budget_spent(budget: int) -> KeyLimitError:
    """The key's tokens for today are spent; it may try again at 00:00 UTC."""
    return KeyLimitError(
        f"this key's budget of {budget} LM tokens per day is spent (resets at 00:00 UTC)",
        until_midnight_s(),
        "tokens",
    )


def usd_budget_spent(budget_micro_usd: int) -> KeyLimitError:
    """The key's dollars for today are spent; it may try again at 00:00 UTC."""
    return KeyLimitError(
        f"this key's dollar budget of ${budget_micro_usd / MICRO_USD:.6g} of LM tokens per day is spent "
        "(resets at 00:00 UTC)",
        until_midnight_s(),
        "usd",
    )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(frozen=True, slots=True)
class _Day:
    """What a key spent on one UTC day."""

    day: str = ""
    tokens: int = 0
    micro_usd: int = 0


_NOTHING = _Day()


class KeyLimits:
    """The rate, token and dollar counts of every key, in this process."""

    def __init__(self, default_rate: int, default_daily_tokens: int, default_daily_usd: float = 0.0) -> None:
        self.default_rate = default_rate
        self.default_tokens = default_daily_tokens
        self.default_usd = default_daily_usd
        self._buckets: dict[str, _Bucket] = {}
        self._spent: dict[str, _Day] = {}
        # The last minute's routes per key (monotonic seconds), read from the route log at start:
        # a key's first bucket is what is left of them, so a restart gives no fresh burst.
        self._recent: dict[str, list[float]] = {}
        self.holds = LocalHolds()

    def seed(
        self, day: str, tokens: Mapping[str, int], micro_dollars: Mapping[str, int] | None = None
    ) -> None:
        """Start ``day``'s counts at ``tokens`` and ``micro_dollars`` per key id, as the route log says."""
        dollars = micro_dollars or {}
        for key_id in tokens.keys() | dollars.keys():
            self._spent[key_id] = _Day(day, tokens.get(key_id, 0), dollars.get(key_id, 0))

    def seed_recent_routes(self, times: Mapping[str, Sequence[datetime]]) -> None:
        """Start each key's rate from its routes of the last minute (all replicas'), as the route log says."""
        wall, mono = datetime.now(UTC), time.monotonic()
        for key_id, made in times.items():
            # A store without zones (SQLite) gives naive datetimes; the route log writes UTC.
            aware = (at if at.tzinfo else at.replace(tzinfo=UTC) for at in made)
            self._recent[key_id] = sorted(mono - (wall - at).total_seconds() for at in aware)

    def _today(self, key_id: str) -> _Day:
        spent = self._spent.get(key_id, _NOTHING)
        return spent if spent.day == utc_day() else _NOTHING

    def spent_today(self, key_id: str) -> int:
        """The LM tokens ``key_id`` spent today, as far as this process knows."""
        return self._today(key_id).tokens

    def spent_micro_usd_today(self, key_id: str) -> int:
        """The LM micro-dollars ``key_id`` spent today, as far as this process knows."""
        return self._today(key_id).micro_usd

    async def admit(self, principal: Principal, routes: int = 1, share: int = 1) -> None:
        """Count ``routes`` starting for ``principal``; KeyLimitError if over its rate or budget.

        ``share``: how many replicas split the key's limits, each holding its part (while the
        counts they share are unreachable).
        """
        if not principal.limited or principal.key_id is None:
            return
        today = self._today(principal.key_id)
        budget = part_of(budget_of(principal, self.default_tokens), share)
        if budget > 0 and today.tokens >= spent_at(budget):
            raise budget_spent(budget)
        usd_budget = part_of(usd_budget_of(principal, self.default_usd), share)
        if usd_budget > 0 and today.micro_usd >= usd_budget:
            raise usd_budget_spent(usd_budget)
        self._take(principal.key_id, part_of(rate_of(principal, self.default_rate), share), routes)

    def _take(self, key_id: str, rate: int, routes: int) -> None:
        if rate <= 0:
            return
        if routes > rate:
            raise too_many_at_once(routes, rate)
        bucket = self._refilled(key_id, rate)
        if bucket.tokens < routes:
            raise rate_refused(rate, (routes - bucket.tokens) * SECONDS_PER_MINUTE / rate)
        bucket.tokens -= routes

    def charge(self, principal: Principal, routes: int, share: int = 1) -> None:
        """Count ``routes`` admitted by the shared counts in this process's bucket too, never refusing.

        So that when the shared counts fail, the fallback goes on from what this replica let
        through instead of a fresh burst.
        """
        if not principal.limited or principal.key_id is None:
            return
        rate = part_of(rate_of(principal, self.default_rate), share)
        if rate > 0:
            bucket = self._refilled(principal.key_id, rate)
            bucket.tokens = max(0.0, bucket.tokens - routes)

    def _refilled(self, key_id: str, rate: int) -> _Bucket:
        """The key's bucket of ``rate`` (its part), refilled up to now."""
        now = time.monotonic()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = self._first_bucket(key_id, rate, now)
        bucket.tokens = min(float(rate), bucket.tokens + (now - bucket.at) * rate / SECONDS_PER_MINUTE)
        bucket.at = now
        return bucket

    def _first_bucket(self, key_id: str, rate: int, now: float) -> _Bucket:
        """A key's bucket when this process first counts it: full, less its last minute's routes.

        Every logged route is taken from this replica's part, whichever replica made it: the
        route log does not say, and a replica must not start a key fuller than it may be.
        """
        per_second = rate / SECONDS_PER_MINUTE
        bucket = _Bucket(float(rate), now - SECONDS_PER_MINUTE)
        for at in self._recent.pop(key_id, []):
            refilled = min(float(rate), bucket.tokens + max(0.0, at - bucket.at) * per_second)
            bucket.tokens, bucket.at = max(0.0, refilled - 1), max(bucket.at, at)
        return bucket

    async def spend(self, principal: Principal, tokens: int, cost_usd: float | None) -> None:
        """Add a route's LM tokens and dollars (None: prices unknown) to ``principal``'s day."""
        self.add(principal, max(0, tokens), micro_usd(cost_usd))

    def add(self, principal: Principal, tokens: int, micro_dollars: int) -> None:
        """Add ``tokens`` and ``micro_dollars`` to ``principal``'s day."""
        if not principal.limited or principal.key_id is None or (tokens <= 0 and micro_dollars <= 0):
            return
        today = self._today(principal.key_id)
        self._spent[principal.key_id] = _Day(
            utc_day(), today.tokens + tokens, today.micro_usd + micro_dollars
        )

    def budgets(self, principal: Principal, share: int = 1) -> Spend:
        """``principal``'s daily tokens and micro-dollars (its part of them of ``share``; 0: none)."""
        return Spend(
            part_of(budget_of(principal, self.default_tokens), share),
            part_of(usd_budget_of(principal, self.default_usd), share),
        )

    def hold(self, principal: Principal, route_id: str, share: int = 1) -> LocalHold | None:
        """Route ``route_id``'s hold on ``principal``'s daily budgets here; None when it has none."""
        if not principal.limited or principal.key_id is None:
            return None
        budgets = self.budgets(principal, share)
        return LocalHold(self, principal, route_id, share) if budgets.tokens or budgets.micro_usd else None

    def grant(
        self, principal: Principal, route_id: str, tokens: int, cost_usd: float | None, share: int = 1
    ) -> tuple[Held, Spend]:
        """Hold ``tokens`` (costing ``cost_usd``) for ``route_id``, or what its key's day has left."""
        assert principal.key_id is not None
        budgets = self.budgets(principal, share)
        others = self.holds.others(principal.key_id, route_id)
        today = self._today(principal.key_id)
        left = Spend(
            budgets.tokens - today.tokens - others.tokens,
            budgets.micro_usd - today.micro_usd - others.micro_usd,
        )
        spend, held = granted(Spend(max(0, tokens), micro_usd(cost_usd)), left, budgets, others.tokens)
        self.holds.put(principal.key_id, route_id, spend)
        return held, spend
