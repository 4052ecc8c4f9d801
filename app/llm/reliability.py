"""The reliability state one LM backend shares across every route.

One retry layer lives here (DSPy's own retries are off): which failures are retried, after
how long, within which budget; when a slow call is hedged; the circuit breaker; and the bound
on routes waiting for the backend. Like the limiter, it is built once per backend.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager

from app.llm.breaker import CircuitBreaker
from app.llm.call_latency import LatencyWindow
from app.llm.limiter import LimiterLoad
from app.llm.ratio_budget import RatioBudget
from app.llm.retry_policy import Failure, backoff_s
from app.settings import ReliabilitySettings

__all__ = ["BackendReliability", "RouteQueueFullError"]

# Bounds of the Retry-After a refused route is told: soon enough to be useful, never absurd.
MIN_RETRY_AFTER_S = 1
MAX_RETRY_AFTER_S = 60


class RouteQueueFullError(Exception):
    """Too many routes already wait for this backend; come back after ``retry_after_s``."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class BackendReliability:
    """Retry policy and budget, hedging, breaker and route queue of one backend."""

    def __init__(self, settings: ReliabilitySettings, seed: int = 0, call_timeout_s: float = 0.0) -> None:
        self.max_attempts = settings.retry_max_attempts
        self.backoff_base_s = settings.retry_backoff_ms / 1000
        self.backoff_cap_s = settings.retry_backoff_max_ms / 1000
        self.hedging = settings.hedging
        self.hedge_quantile = settings.hedge_quantile
        self.route_queue_limit = settings.route_queue_limit
        # A timed-out call asks for its retry LLM_TIMEOUT after it was counted: a shorter window
        # has forgotten it by then, and at the end of a burst (calls done, timeouts still to come)
        # would refuse the retries the burst's own calls paid for.
        window = max(settings.retry_budget_window_s, 2 * call_timeout_s)
        # Every call is noted in both windows (note_call), retries and hedges included.
        self.retry_budget = RatioBudget(
            settings.retry_budget_ratio, settings.retry_budget_min, window, extra_calls_noted=True
        )
        # A hedge goes out at about the p95 latency, never after a timeout: the plain window.
        self.hedge_budget = RatioBudget(
            settings.hedge_budget_ratio, 0, settings.retry_budget_window_s, extra_calls_noted=True
        )
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
        self.latency = LatencyWindow()
        self.active_routes = 0
        self._rng = random.Random(seed)  # jitter only; seeded so a run can be replayed

    def note_call(self) -> None:
        """Count one LM call in both budgets' windows."""
        self.retry_budget.note_call()
        self.hedge_budget.note_call()

    def retry_delay_s(self, retry: int, failure: Failure) -> float:
        """Wait before retry number ``retry``: jittered backoff, never less than Retry-After."""
        delay = 0.0 if failure.parse else backoff_s(retry, self.backoff_base_s, self.backoff_cap_s, self._rng)
        return max(delay, failure.retry_after or 0.0)

    def hedge_delay_s(self) -> float | None:
        """How long a call may run before it is hedged; None when hedging is off or unlearned."""
        return self.latency.quantile(self.hedge_quantile) if self.hedging else None

    def may_hedge(self, limiter: LimiterLoad) -> bool:
        """Whether to send a hedge now: only into spare capacity, and within the hedge budget."""
        spare = limiter.waiting == 0 and limiter.in_flight < limiter.limit
        return spare and self.hedge_budget.try_spend()

    def _retry_after_s(self, limiter: LimiterLoad) -> int:
        """A guess at when capacity frees up: the queued calls drained at the observed pace."""
        median = self.latency.quantile(0.5) or 1.0
        drain = median * (limiter.waiting + limiter.in_flight) / limiter.limit
        return int(min(MAX_RETRY_AFTER_S, max(MIN_RETRY_AFTER_S, math.ceil(drain))))

    @contextmanager
    def route_slot(self, limiter: LimiterLoad) -> Iterator[None]:
        """Hold one of the route queue's places; RouteQueueFullError when none is left."""
        if self.active_routes >= self.route_queue_limit:
            raise RouteQueueFullError(
                f"{self.active_routes} routes already wait for the LM backend "
                f"(TABLEROUTER_ROUTE_QUEUE_LIMIT={self.route_queue_limit})",
                self._retry_after_s(limiter),
            )
        self.active_routes += 1
        try:
            yield
        finally:
            self.active_routes -= 1
