"""Each source's route memory as the running service holds it, in step with the store.

The store is the authority: imports and feedback are written there, and every replica loads
what it lacks (``sync``: new ids only; everything again when an entry was forgotten). A sync
runs after this process's own writes and every ``refresh_s`` in the background, so another
replica's imports arrive within that time. Lookups never touch the store.

With an embeddings endpoint, each sync then embeds the questions that have no vector yet, in
batches (``EMBED_BATCH``), and keeps each vector by entry id, so an index rebuilt after a
forget embeds nothing again. A failed batch stops that sync's embedding (one endpoint timeout
at most); the next sync tries again, and meanwhile the memory is lexical for those entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from app.routing.retrieval.memory_index import MemoryIndex, MemoryMatch
from app.routing.retrieval.mined_joins import MinedJoins
from app.store.route_memory import MemoryRepository, NewEntry

__all__ = ["MemoryConfig", "QuestionEmbedder", "RouteMemory"]

log = logging.getLogger(__name__)
EMBED_BATCH = 256


class QuestionEmbedder(Protocol):
    """The embeddings endpoint as the memory uses it (``app.routing.retrieval.dense.TableEmbeddings``)."""

    async def embed(self, texts: list[str]) -> np.ndarray: ...

    async def question_vector(self, question: str) -> np.ndarray | None: ...


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """How the memory is used at route time and kept."""

    neighbours: int = 5  # similar past questions that lend their tables a prior
    min_similarity: float = 0.3
    refresh_s: float = 30.0  # 0: only after this process's own writes
    retention_days: float = 0.0  # 0: keep entries until forgotten
    dense_floor: float = 0.2  # the embeddings model's cosine of unrelated questions (memory_vectors)


class RouteMemory:
    """The memory index and mined joins of every source, loaded from the store."""

    def __init__(
        self, repository: MemoryRepository, config: MemoryConfig, embedder: QuestionEmbedder | None = None
    ) -> None:
        self.repository = repository
        self.config = config
        self.embedder = embedder
        self._vectors: dict[str, dict[int, np.ndarray]] = {}  # source → entry id → unit vector
        self._indexes: dict[str, MemoryIndex] = {}
        self._joins: dict[str, MinedJoins] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._task: asyncio.Task[None] | None = None
        self._embedding: asyncio.Task[None] | None = None

    def lookup(self, source: str, question: str) -> MemoryMatch:
        """The past questions of ``source`` most similar to ``question``."""
        index = self._indexes.get(source)
        if index is None:
            return MemoryMatch()
        return index.similar(question, self.config.neighbours, self.config.min_similarity)

    async def search(self, source: str, question: str, embedded: str | None = None) -> MemoryMatch:
        """``lookup`` fused with the dense hits of ``embedded`` (default: the question), if any vectors.

        The vector comes from the embedder's recent questions when the route asked for it
        already; the cosine over every vector runs in a worker thread (numpy frees the GIL).
        """
        index = self._indexes.get(source)
        if index is None:
            return MemoryMatch()
        config = self.config
        if self.embedder is None or not len(index.vectors):
            return index.similar(question, config.neighbours, config.min_similarity)
        vector = await self.embedder.question_vector(embedded or question)
        if vector is None:
            return index.similar(question, config.neighbours, config.min_similarity)
        dense = await asyncio.to_thread(
            index.vectors.search, vector, config.neighbours, config.min_similarity, config.dense_floor
        )
        return index.similar(question, config.neighbours, config.min_similarity, dense)

    def index(self, source: str) -> MemoryIndex | None:
        """``source``'s loaded index (None before its first sync)."""
        return self._indexes.get(source)

    def joins(self, source: str) -> MinedJoins:
        """The joins mined from ``source``'s SQL (none before its first sync)."""
        return self._joins.get(source, MinedJoins(()))

    def version(self, source: str) -> str:
        """What the memory of ``source`` holds, as a short token: a route cached under another is stale."""
        index = self._indexes.get(source)
        joins = self._joins.get(source)
        return f"{index.entries if index else 0}:{index.top_id if index else 0}:{joins.total if joins else 0}"

    async def sync(self, source: str, embed: bool = True) -> None:
        """Load ``source``'s entries this process lacks, and its mined joins (and embed its new questions)."""
        lock = self._locks.setdefault(source, asyncio.Lock())
        async with lock:
            count, _ = await self.repository.summary(source)
            loaded = self._indexes.get(source)
            index = MemoryIndex() if loaded is None else loaded
            new = [row async for row in self.repository.rows_after(source, index.top_id)]
            if count != index.entries + len(new):
                # Entries only grow, except when one is forgotten or replaced: then all again.
                index = MemoryIndex()
                new = [row async for row in self.repository.rows_after(source, 0)]
            for row in new:
                index.add(row.id, row.question, row.tables)
            self._indexes[source] = index
            self._joins[source] = MinedJoins(await self.repository.joins(source))
            if embed and self.embedder is not None:
                await self._embed(source, index, self.embedder)

    async def _embed_loaded(self, sources: Sequence[str]) -> None:
        """Embed what start-up loaded, in the background: a large memory must not hold start-up."""
        for source in sources:
            index = self._indexes.get(source)
            if index is not None and self.embedder is not None:
                async with self._locks.setdefault(source, asyncio.Lock()):
                    await self._embed(source, index, self.embedder)

    async def _embed(self, source: str, index: MemoryIndex, embedder: QuestionEmbedder) -> None:
        """Give ``index``'s questions their vectors: kept ones first, then the endpoint's, in batches."""
        kept = self._vectors.setdefault(source, {})
        if len(kept) > len(index):  # entries were forgotten: their vectors go too
            live = index.entry_ids()
            kept = self._vectors[source] = {i: v for i, v in kept.items() if i in live}
        missing = index.without_vectors()
        known = [(p, kept[i]) for p, i, _ in missing if i in kept]
        if known:
            index.vectors.add([p for p, _ in known], np.stack([v for _, v in known]))
        asked = [(p, i, q) for p, i, q in missing if i not in kept]
        for start in range(0, len(asked), EMBED_BATCH):
            batch = asked[start : start + EMBED_BATCH]
            try:
                vectors = await embedder.embed([q for _, _, q in batch])
            except Exception as exc:  # an optional signal: lexical until the next sync
                log.warning(
                    "route memory of %r: questions not embedded (%s: %s)", source, type(exc).__name__, exc
                )
                return
            if vectors.shape[0] != len(batch):
                log.warning("route memory of %r: the embeddings reply has the wrong shape", source)
                return
            index.vectors.add([p for p, _, _ in batch], vectors)
            kept.update((i, v) for (_, i, _), v in zip(batch, vectors, strict=True))

    async def remember(
        self, source: str, entries: Sequence[NewEntry], joins: Sequence[tuple[str, str, str, str]] = ()
    ) -> int:
        """Store ``entries`` and ``joins`` for ``source`` and load them here; returns the entries stored."""
        stored = await self.repository.add(source, entries)
        await self.repository.add_joins(source, joins)
        await self.sync(source)
        return stored

    async def forget(self, source: str, entry_id: int) -> bool:
        """Forget one entry of ``source`` here and in the store."""
        found = await self.repository.forget(source, entry_id)
        if found:
            await self.sync(source)
        return found

    async def _refresh(self, sources: Sequence[str]) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_s)
            if self.config.retention_days > 0:
                cutoff = datetime.now(UTC) - timedelta(days=self.config.retention_days)
                with contextlib.suppress(SQLAlchemyError, OSError):
                    await self.repository.forget_before(cutoff)
            for source in sources:
                try:
                    await self.sync(source)
                except (SQLAlchemyError, OSError) as exc:  # the store down: keep serving what is loaded
                    log.warning("route memory of %r not refreshed: %r", source, exc)

    async def start(self, sources: Sequence[str]) -> None:
        """Load every source's memory (a store that fails leaves it empty) and start the refresh."""
        for source in sources:
            try:
                await self.sync(source, embed=False)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("route memory of %r not loaded: %r", source, exc)
        if self.embedder is not None:
            self._embedding = asyncio.create_task(
                self._embed_loaded(list(sources)), name="route-memory-embed"
            )
        if self.config.refresh_s > 0:
            self._task = asyncio.create_task(self._refresh(list(sources)), name="route-memory-refresh")

    async def aclose(self) -> None:
        """Stop the background refresh and embedding."""
        for task in (self._task, self._embedding):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
