"""Per-key limits: routes per minute (a token bucket) and LM tokens per UTC day.

Both are kept in process: with several workers or replicas each holds its own count, so a
key may get up to that many times its limits (documented; a shared store of counts is the
next step if it matters). A route is counted when it starts (the rate) and its LM tokens when
it ends (the budget): routes already running when the budget runs out may overshoot it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.auth.principal import Principal

__all__ = ["KeyLimitError", "KeyLimits"]

SECONDS_PER_MINUTE = 60.0


class KeyLimitError(Exception):
    """A key is over one of its limits; it may try again after ``retry_after_s``."""

    def __init__(self, detail: str, retry_after_s: int, kind: str) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        self.kind = kind  # "rate" or "tokens"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class KeyLimits:
    """The rate and token counts of every key seen since start-up."""

    def __init__(self, default_rate: int, default_daily_tokens: int) -> None:
        self._default_rate = default_rate
        self._default_tokens = default_daily_tokens
        self._buckets: dict[str, _Bucket] = {}
        self._spent: dict[str, tuple[str, int]] = {}  # key id → (UTC day, tokens spent)

    def _rate(self, principal: Principal) -> int:
        return self._default_rate if principal.rate_limit is None else principal.rate_limit

    def _budget(self, principal: Principal) -> int:
        return self._default_tokens if principal.daily_tokens is None else principal.daily_tokens

    def admit(self, principal: Principal, routes: int = 1) -> None:
        """Count ``routes`` starting for ``principal``; KeyLimitError if over its rate or budget."""
        if not principal.limited or principal.key_id is None:
            return
        self._check_budget(principal)
        self._take(principal, routes)

    def _take(self, principal: Principal, routes: int) -> None:
        rate = self._rate(principal)
        if rate <= 0:
            return
        assert principal.key_id is not None
        now = time.monotonic()
        per_second = rate / SECONDS_PER_MINUTE
        bucket = self._buckets.setdefault(principal.key_id, _Bucket(float(rate), now))
        bucket.tokens = min(float(rate), bucket.tokens + (now - bucket.at) * per_second)
        bucket.at = now
        if routes > rate:
            raise KeyLimitError(
                f"{routes} routes at once are more than this key's limit of {rate} per minute",
                int(SECONDS_PER_MINUTE),
                "rate",
            )
        if bucket.tokens < routes:
            wait = math.ceil((routes - bucket.tokens) / per_second)
            raise KeyLimitError(
                f"this key's limit of {rate} routes per minute is reached", max(1, wait), "rate"
            )
        bucket.tokens -= routes

    def _check_budget(self, principal: Principal) -> None:
        budget = self._budget(principal)
        if budget <= 0:
            return
        assert principal.key_id is not None
        day, spent = self._spent.get(principal.key_id, ("", 0))
        now = datetime.now(UTC)
        if day == now.date().isoformat() and spent >= budget:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            raise KeyLimitError(
                f"this key's budget of {budget} LM tokens per day is spent (resets at 00:00 UTC)",
                max(1, math.ceil((midnight - now).total_seconds())),
                "tokens",
            )

    def spend(self, principal: Principal, tokens: int) -> None:
        """Add the LM tokens a route of ``principal`` used to today's count."""
        if not principal.limited or principal.key_id is None or tokens <= 0:
            return
        today = datetime.now(UTC).date().isoformat()
        day, spent = self._spent.get(principal.key_id, (today, 0))
        self._spent[principal.key_id] = (today, (spent if day == today else 0) + tokens)
