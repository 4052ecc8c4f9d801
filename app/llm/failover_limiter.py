"""The LM limits of a replica: shared in Redis while it answers, local shares when it does not.

When Redis fails, each replica limits itself to its share (each limit divided by
``TABLEROUTER_REPLICAS``), so the replicas together stay near the global limit without talking
to each other; the link probes Redis and the shared limits return when it answers. During the
switch a few calls may run under the old and the new limits at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from app.llm.lease_semaphore import LeaseSemaphore
from app.llm.limiter import SlotLimiter
from app.llm.limits import RatedLimiter, backend_key, local_limits
from app.llm.shared_rate import SharedRateLimit
from app.observability.metrics import SHARED_LIMITS
from app.redis_link import RedisLink, RedisUnavailableError
from app.settings import Settings


class FailoverLimiter:
    """Enter the shared limits while Redis is up; fall back to the local ones when it fails."""

    def __init__(self, link: RedisLink, shared: SlotLimiter, local: SlotLimiter) -> None:
        self.link = link
        self.shared = shared
        self.local = local

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[None]:
        if self.link.up:
            stack = AsyncExitStack()
            try:
                await stack.enter_async_context(self.shared.slot(tokens))
            except RedisUnavailableError as exc:
                self.link.mark_down(exc)
            else:
                async with stack:
                    yield
                return
        async with self.local.slot(tokens):
            yield


def shared_limits(settings: Settings, link: RedisLink) -> tuple[FailoverLimiter, LeaseSemaphore]:
    """The failover limits of the configured backend; the semaphore is returned to be closed."""
    name = backend_key(settings)
    semaphore = LeaseSemaphore(link, name, settings.llm_max_concurrency, settings.redis_lease_seconds)
    shared = RatedLimiter(
        semaphore,
        SharedRateLimit(link, f"{name}:rpm", settings.llm_rpm_limit) if settings.llm_rpm_limit else None,
        SharedRateLimit(link, f"{name}:tpm", settings.llm_tpm_limit) if settings.llm_tpm_limit else None,
    )
    link.on_change(lambda up: SHARED_LIMITS.set(1 if up else 0))
    return FailoverLimiter(link, shared, local_limits(settings, share=settings.replicas)), semaphore
