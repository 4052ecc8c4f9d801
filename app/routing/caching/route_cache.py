"""The route cache around the route service: an identical route is answered from memory,
and identical routes in flight share one.

What makes routes identical is ``app.routing.caching.route_key`` (the asking key's grant included: a
key never gets an answer computed over tables it may not see). Partial answers (some chunk
failed) are not kept. Concurrent identical routes wait on one computation (single-flight); it
runs as its own task, so a client that goes away does not cancel it for the others. With a
shared cache (Redis, ``app.routing.caching.shared_route_cache``) a route missing here is looked up
there, and computed once across replicas; the local cache still answers first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from app.observability.metrics import ROUTE_CACHE
from app.routing.caching.lru import CacheCounters, LRUCache
from app.routing.caching.route_codec import decode_route, encode_route
from app.routing.caching.route_key import RouteKey, route_key
from app.routing.caching.verdict_cache import VerdictCache
from app.routing.query import RouteQuery
from app.routing.result import RouteResult
from app.routing.service import OnRouteEvent, RouteService

if TYPE_CHECKING:  # built only with a Redis; a single replica never imports the Redis client
    from app.routing.caching.shared_route_cache import SharedRouteCache

__all__ = ["CachedRoutes"]

# A computation's answer, and whether another replica computed it (the shared cache).
_Landed = tuple[RouteResult, bool]


class CachedRoutes:
    """The route service behind a bounded route cache with single-flight."""

    def __init__(
        self,
        service: RouteService,
        capacity: int,
        program_version: str,
        *,
        shared: SharedRouteCache | None = None,
    ) -> None:
        self.service = service
        self.routes: LRUCache[RouteKey, RouteResult] = LRUCache(capacity)
        self.shared = shared
        self.program_version = program_version
        self._in_flight: dict[RouteKey, _Flight] = {}

    def counters(self) -> dict[str, CacheCounters]:
        """The route cache's counters, and the verdict cache's when there is an LM judge."""
        counters = {"routes": self.routes.counters()}
        if isinstance(self.service.judge, VerdictCache):
            counters["verdicts"] = self.service.judge.counters()
        return counters

    def _landed(self, key: RouteKey, task: asyncio.Task[_Landed]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone away

    def _key(self, query: RouteQuery) -> RouteKey:
        return route_key(
            query.question,
            source=query.source,
            catalog_version=query.prepared.version,
            program_version=self.program_version,
            top_k=query.top_k,
            min_score=query.min_score,
            schemas=query.schemas,
            visible=query.visible,
            token_budget=query.token_budget,
            context=None if query.conversation is None else query.conversation.fingerprint(),
            memory=self.service.memory_version(query.source),
        )

    async def route(self, query: RouteQuery, on_event: OnRouteEvent | None = None) -> RouteResult:
        """The cached answer, the answer of an identical route in flight, or a new one.

        A route that reports its events (a stream) reports its own chunks, so it is not shared.
        """
        if self.routes.capacity <= 0 or on_event is not None:
            return await self.service.route(query, on_event)
        started = time.perf_counter()
        key = self._key(query)
        cached = self.routes.get(key)
        if cached is not None:
            ROUTE_CACHE.labels("hit").inc()
            return _served(cached, query, "hit", started)
        flight = self._in_flight.get(key)
        joined = flight is not None
        if flight is None:
            # The first asker's query (its deadline, its route id) runs the shared computation.
            compute = functools.partial(self.service.route, query)
            task = asyncio.create_task(self._computed(key, compute, query))
            flight = self._in_flight[key] = _Flight(task)
            task.add_done_callback(lambda done: self._landed(key, done))
        else:
            self.routes.coalesced += 1
            ROUTE_CACHE.labels("shared").inc()
        result, from_shared = await flight.wait()
        if joined:
            return _served(result, query, "hit", started)
        ROUTE_CACHE.labels("remote_hit" if from_shared else "miss").inc()
        if from_shared:
            self.routes.hits += 1  # the local look-up counted a miss; the deployment's cache hit
            self.routes.misses -= 1
        if _complete(result):
            self.routes.put(key, result)
        return _served(result, query, "hit" if from_shared else "miss", started)

    async def _computed(
        self, key: RouteKey, compute: Callable[[], Awaitable[RouteResult]], query: RouteQuery
    ) -> _Landed:
        """The route computed here, or another replica's answer from the shared cache (True)."""
        if self.shared is None:
            return await compute(), False
        # Waiting for another replica may take at most half the time left: the rest is enough
        # to compute the route here if that replica never answers.
        return await self.shared.get_or_compute(
            key.digest(),
            compute,
            lambda result: encode_route(result) if _complete(result) else None,
            decode_route,
            query.deadline.remaining() / 2,
        )


def _complete(result: RouteResult) -> bool:
    """Whether an answer may be kept: every chunk answered, none from the lexical fallback."""
    return result.stats.failed_chunks == 0 and not result.partial and not result.degraded


class _Flight:
    """One computation shared by identical routes; cancelled when its last waiter goes away.

    Each waiter is shielded from the others' cancellation (a client that hangs up must not
    fail the rest), but a computation nobody waits for any more stops, freeing its LM calls.
    """

    def __init__(self, task: asyncio.Task[_Landed]) -> None:
        self.task = task
        self.waiters = 0

    async def wait(self) -> _Landed:
        self.waiters += 1
        try:
            return await asyncio.shield(self.task)
        finally:
            self.waiters -= 1
            if self.waiters == 0 and not self.task.done():
                self.task.cancel()


def _served(result: RouteResult, query: RouteQuery, cache: str, started: float) -> RouteResult:
    """``result`` as this request's answer: its own route id and elapsed time; a hit spent no LM call."""
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    stats = dataclasses.replace(result.stats, cache=cache, elapsed_ms=elapsed)
    if cache == "hit":
        stats = dataclasses.replace(
            stats,
            lm_calls=0,
            prompt_tokens=0,
            completion_tokens=0,
            cached_chunks=0,
            cached_prompt_tokens=0,
            cost_usd=None if stats.cost_usd is None else 0.0,
        )
    # Each request keeps its own id (a shared computation ran under the first asker's).
    return dataclasses.replace(result, route_id=query.route_id, stats=stats)
