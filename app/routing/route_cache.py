"""The route cache: an identical route is answered from memory, and identical routes in flight share one.

A route is identical when its normalised question, source, catalog version, judge program
version, request options (``top_k``, ``min_score``, ``schemas``) and the tables the asking key
may see (its grant's fingerprint) are: a key never gets an answer computed over tables it may
not see. A new catalog
version is a new key, so a refresh never serves stale tables. Partial answers (some chunk
failed) are not kept. Concurrent identical routes wait on one computation (single-flight);
it runs as its own task, so a client that goes away does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable, Hashable, Sequence

from app.observability.logs import ROUTE_ID
from app.observability.metrics import ROUTE_CACHE
from app.routing.deadline import Deadline
from app.routing.dense import TableEmbeddings
from app.routing.judge import ChunkOutcome
from app.routing.judge_signature import PROGRAM_VERSION
from app.routing.lru import CacheCounters, LRUCache, normalize_question
from app.routing.prepared import PreparedCatalog
from app.routing.service import DEFAULT_SHORTLIST_SIZE, RouteResult, RouteService
from app.routing.verdict_cache import CachingJudge

__all__ = ["CachedRouteService"]


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
    ) -> None:
        super().__init__(judge, shortlist_size, embeddings, prior_weight, deadline_s=deadline_s)
        self.routes: LRUCache[Hashable, RouteResult] = LRUCache(capacity)
        self._in_flight: dict[Hashable, _Flight] = {}
        self.program_version = judge.program_version if judge is not None else f"{PROGRAM_VERSION}:lexical"

    def counters(self) -> dict[str, CacheCounters]:
        """The route cache's counters, and the verdict cache's when there is an LM judge."""
        counters = {"routes": self.routes.counters()}
        if isinstance(self.judge, CachingJudge):
            counters["verdicts"] = self.judge.counters()
        return counters

    def _landed(self, key: Hashable, task: asyncio.Task[RouteResult]) -> None:
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
        key = (
            normalize_question(question),
            prepared.catalog.source,
            prepared.version,
            self.program_version,
            top_k,
            min_score,
            tuple(sorted(set(schemas))) if schemas else None,
            _visible(prepared, patterns),
        )
        cached = self.routes.get(key)
        if cached is not None:
            ROUTE_CACHE.labels("hit").inc()
            return _served(cached, "hit", started)
        flight = self._in_flight.get(key)
        if flight is None:
            # The first asker's deadline bounds the shared computation.
            work = super().route(
                prepared, question, top_k, min_score, schemas, deadline=deadline, patterns=patterns
            )
            task = asyncio.create_task(work)
            flight = self._in_flight[key] = _Flight(task)
            task.add_done_callback(lambda done: self._landed(key, done))
            outcome = "miss"
            ROUTE_CACHE.labels("miss").inc()
        else:
            self.routes.coalesced += 1
            outcome = "hit"
            ROUTE_CACHE.labels("shared").inc()
        result = await flight.wait()
        complete = result.stats.failed_chunks == 0 and not result.partial and not result.degraded
        if outcome == "miss" and complete:
            self.routes.put(key, result)
        return _served(result, outcome, started)


class _Flight:
    """One computation shared by identical routes; cancelled when its last waiter goes away.

    Each waiter is shielded from the others' cancellation (a client that hangs up must not
    fail the rest), but a computation nobody waits for any more stops, freeing its LM calls.
    """

    def __init__(self, task: asyncio.Task[RouteResult]) -> None:
        self.task = task
        self.waiters = 0

    async def wait(self) -> RouteResult:
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
