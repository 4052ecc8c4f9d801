"""The LM limits of one backend: a concurrency slot, then optional per-minute rates, observed.

``build_limits`` picks the in-process versions, or - with ``TABLEROUTER_REDIS_URL`` - the
Redis versions shared by every replica, with the in-process ones (each limit divided by
``TABLEROUTER_REPLICAS``) standing in while Redis is down.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType

from app.llm.limiter import Limiter, SlotLimiter
from app.llm.rate_limit import LocalRateLimit, RateLimit
from app.observability.metrics import LIMITER_WAIT, LIMITER_WAITING, LM_IN_FLIGHT
from app.settings import Settings


class RatedLimiter:
    """A concurrency slot, then a request and the call's tokens booked on the rate limits.

    The rates are booked inside the slot so at most ``limit`` callers wait on them at a time.
    """

    def __init__(
        self, concurrency: SlotLimiter, rpm: RateLimit | None = None, tpm: RateLimit | None = None
    ) -> None:
        self.concurrency = concurrency
        self.rpm = rpm
        self.tpm = tpm

    def slot(self, tokens: int = 0) -> AbstractAsyncContextManager[None]:
        if self.rpm is None and self.tpm is None:
            return self.concurrency.slot(tokens)  # no rates: one layer less on every call
        return self._rated_slot(tokens)

    @asynccontextmanager
    async def _rated_slot(self, tokens: int) -> AsyncIterator[None]:
        async with self.concurrency.slot(tokens):
            if self.rpm is not None:
                await self.rpm.take(1)
            if self.tpm is not None and tokens > 0:
                await self.tpm.take(tokens)
            yield


class ObservedLimiter:
    """Any limiter, with its waits and calls in flight in the Prometheus metrics."""

    def __init__(self, inner: SlotLimiter, limit: int) -> None:
        self.inner = inner
        # This replica's view, for hedging and back-pressure: its own calls waiting and running
        # against ``limit`` (the global limit when the inner limiter is shared).
        self.limit = limit
        self.in_flight = 0
        self.max_in_flight = 0
        self.waiting = 0

    def slot(self, tokens: int = 0) -> AbstractAsyncContextManager[None]:
        return _ObservedSlot(self, self.inner.slot(tokens))


class _ObservedSlot:
    """One hold of an ``ObservedLimiter`` slot, counted while waiting and while held."""

    __slots__ = ("_inner", "_owner")

    def __init__(self, owner: ObservedLimiter, inner: AbstractAsyncContextManager[None]) -> None:
        self._owner = owner
        self._inner = inner

    async def __aenter__(self) -> None:
        owner = self._owner
        started = time.perf_counter()
        LIMITER_WAITING.inc()
        owner.waiting += 1
        try:
            await self._inner.__aenter__()
        finally:
            LIMITER_WAITING.dec()
            owner.waiting -= 1
        LIMITER_WAIT.observe(time.perf_counter() - started)
        LM_IN_FLIGHT.inc()
        owner.in_flight += 1
        owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool | None:
        owner = self._owner
        LM_IN_FLIGHT.dec()
        owner.in_flight -= 1
        return await self._inner.__aexit__(kind, error, trace)


def backend_key(settings: Settings) -> str:
    """A short name for the LM backend, the same on every replica configured alike."""
    ident = f"{settings.llm_model}|{settings.llm_api_base or ''}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def local_limits(settings: Settings, share: int = 1) -> RatedLimiter:
    """The in-process limits, each ``1/share`` of the configured one (at least 1)."""
    rpm = settings.llm_rpm_limit / share if settings.llm_rpm_limit else None
    tpm = settings.llm_tpm_limit / share if settings.llm_tpm_limit else None
    return RatedLimiter(
        Limiter(max(1, settings.llm_max_concurrency // share)),
        LocalRateLimit(rpm) if rpm else None,
        LocalRateLimit(tpm) if tpm else None,
    )
