"""The route cache: an identical route is answered from memory, and identical routes in flight share one.

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
import uuid
from collections.abc import Awaitable, Callable, Sequence

from app.observability.logs import ROUTE_ID
from app.observability.metrics import ROUTE_CACHE
from app.routing.caching.lru import CacheCounters, LRUCache
from app.routing.caching.route_codec import decode_route, encode_route
from app.routing.caching.route_key import RouteKey, route_key
from app.routing.caching.shared_route_cache import SharedRouteCache
from app.routing.caching.verdict_cache import CachingJudge
from app.routing.deadline import Deadline
from app.routing.judging.judge import ChunkOutcome
from app.routing.judging.signature import PROGRAM_VERSION
from app.routing.preparation.prepared import PreparedCatalog
from app.routing.retrieval.dense import TableEmbeddings
from app.routing.service import DEFAULT_SHORTLIST_SIZE, RouteResult, RouteService

__all__ = ["CachedRouteService"]

# A computation's answer, and whether another replica computed it (the shared cache).
_Landed = tuple[RouteResult, bool]


class CachedRouteService(RouteService):
    """RouteService behind a bounded route cache with single-flight."""

    def __init__(
        self,
        judge: CachingJudge | None,
        capacity: int,
        shortlist_size: int = DEFAULT_SHORTLIST_SIZE,
        embeddings: TableEmbeddings | None = None,
        prior_weight: float = 0.0,
        *,
        deadline_s: float = 30.0,
        shared: SharedRouteCache | None = None,
    ) -> None:
        super().__init__(judge, shortlist_size, embeddings, prior_weight, deadline_s=deadline_s)
        self.routes: LRUCache[RouteKey, RouteResult] = LRUCache(capacity)
        self.shared = shared
        self._in_flight: dict[RouteKey, _Flight] = {}
        self.program_version = judge.program_version if judge is not None else f"{PROGRAM_VERSION}:lexical"

    def counters(self) -> dict[str, CacheCounters]:
        """The route cache's counters, and the verdict cache's when there is an LM judge."""
        counters = {"routes": self.routes.counters()}
        if isinstance(self.judge, CachingJudge):
            counters["verdicts"] = self.judge.counters()
        return counters

    def _landed(self, key: RouteKey, task: asyncio.Task[_Landed]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone away

    async def route(
        self,
        prepared: PreparedCatalog,
        question: str,
        top_k: int,
        min_score: float,
        schemas: Sequence[str] | None = None,
        *,
        on_chunk: Callable[[ChunkOutcome], None] | None = None,
        deadline: Deadline | None = None,
        patterns: Sequence[str] | None = None,
    ) -> RouteResult:
        """The cached answer, the answer of an identical route in flight, or a new one.

        A streamed route (``on_chunk``) reports each of its own chunks, so it is not shared.
        """
        if self.routes.capacity <= 0 or on_chunk is not None:
            return await super().route(
                prepared,
                question,
                top_k,
                min_score,
                schemas,
                on_chunk=on_chunk,
                deadline=deadline,
                patterns=patterns,
            )
        started = time.perf_counter()
        key = route_key(
            question,
            source=prepared.catalog.source,
            catalog_version=prepared.version,
            program_version=self.program_version,
            top_k=top_k,
            min_score=min_score,
            schemas=schemas,
            visible=_visible(prepared, patterns),
        )
        cached = self.routes.get(key)
        if cached is not None:
            ROUTE_CACHE.labels("hit").inc()
            return _served(cached, "hit", started)
        flight = self._in_flight.get(key)
        joined = flight is not None
        if flight is None:
            # The first asker's deadline bounds the shared computation.
            deadline = deadline or Deadline.after(self.deadline_s)
            compute = functools.partial(
                super().route,
                prepared,
                question,
                top_k,
                min_score,
                schemas,
                deadline=deadline,
                patterns=patterns,
            )
            work = self._computed(key, compute, deadline)
            task = asyncio.create_task(work)
            flight = self._in_flight[key] = _Flight(task)
            task.add_done_callback(lambda done: self._landed(key, done))
        else:
            self.routes.coalesced += 1
            ROUTE_CACHE.labels("shared").inc()
        result, from_shared = await flight.wait()
        if joined:
            return _served(result, "hit", started)
        ROUTE_CACHE.labels("remote_hit" if from_shared else "miss").inc()
        if from_shared:
            self.routes.hits += 1  # the local look-up counted a miss; the deployment's cache hit
            self.routes.misses -= 1
        if _complete(result):
            self.routes.put(key, result)
        return _served(result, "hit" if from_shared else "miss", started)

    async def _computed(
        self, key: RouteKey, compute: Callable[[], Awaitable[RouteResult]], deadline: Deadline
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
            deadline.remaining() / 2,
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


def _visible(prepared: PreparedCatalog, patterns: Sequence[str] | None) -> str | None:
    """The fingerprint of the tables ``patterns`` let a route see; None: every table."""
    grant = prepared.grant(patterns)
    return None if grant is None else grant.fingerprint


def _served(result: RouteResult, cache: str, started: float) -> RouteResult:
    """``result`` as this request's answer: its own route id and elapsed time; a hit spent no LM call."""
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    stats = dataclasses.replace(result.stats, cache=cache, elapsed_ms=elapsed)
    if cache == "hit":
        stats = dataclasses.replace(stats, lm_calls=0, prompt_tokens=0, completion_tokens=0, cached_chunks=0)
    # Each request keeps its own id, the one its log lines carry (a shared computation ran under
    # the first asker's).
    return dataclasses.replace(result, route_id=ROUTE_ID.get() or uuid.uuid4().hex, stats=stats)
