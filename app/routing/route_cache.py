"""The route cache: an identical route is answered from memory, and identical routes in flight share one.

A route is identical when its normalised question, source, catalog version, judge program
version and request options (``top_k``, ``min_score``, ``schemas``) are. A new catalog
version is a new key, so a refresh never serves stale tables. Partial answers (some chunk
failed) are not kept. Concurrent identical routes wait on one computation (single-flight);
it runs as its own task, so a client that goes away does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Hashable, Sequence

from app.routing.dense import TableEmbeddings
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
    ) -> None:
        super().__init__(judge, shortlist_size, embeddings)
        self.routes: LRUCache[Hashable, RouteResult] = LRUCache(capacity)
        self._in_flight: dict[Hashable, asyncio.Task[RouteResult]] = {}
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
    ) -> RouteResult:
        """The cached answer, the answer of an identical route in flight, or a new one."""
        if self.routes.capacity <= 0:
            return await super().route(prepared, question, top_k, min_score, schemas)
        started = time.perf_counter()
        key = (
            normalize_question(question),
            prepared.catalog.source,
            prepared.version,
            self.program_version,
            top_k,
            min_score,
            tuple(sorted(set(schemas))) if schemas else None,
        )
        cached = self.routes.get(key)
        if cached is not None:
            return _served(cached, "hit", started)
        task = self._in_flight.get(key)
        if task is not None:
            self.routes.coalesced += 1
            return _served(await asyncio.shield(task), "hit", started)
        task = asyncio.create_task(super().route(prepared, question, top_k, min_score, schemas))
        self._in_flight[key] = task
        task.add_done_callback(lambda done: self._landed(key, done))
        result = await asyncio.shield(task)
        if result.stats.failed_chunks == 0:
            self.routes.put(key, result)
        return _served(result, "miss", started)


def _served(result: RouteResult, cache: str, started: float) -> RouteResult:
    """``result`` as this request's answer: its own route id and elapsed time; a hit spent no LM call."""
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    stats = dataclasses.replace(result.stats, cache=cache, elapsed_ms=elapsed)
    if cache == "hit":
        stats = dataclasses.replace(stats, lm_calls=0, prompt_tokens=0, completion_tokens=0, cached_chunks=0)
    return dataclasses.replace(result, route_id=uuid.uuid4().hex, stats=stats)
