"""Dense similarity of a question to every table card, from an embeddings endpoint via ``dspy.Embedder``.

Table vectors depend only on the catalog version, so they are computed once per version (the
first route of a version waits for them; routes arriving meanwhile share that computation)
and kept in memory for the last few versions. The question costs one embeddings call per
route. Dense similarity is optional: when the endpoint fails, the route keeps the lexical
shortlist and the failure is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict

import dspy
import numpy as np

from app.routing.prepared import PreparedCatalog
from app.settings import Settings

__all__ = ["TableEmbeddings", "build_table_embeddings"]

log = logging.getLogger(__name__)
BATCH_SIZE = 128


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class TableEmbeddings:
    """Cosine similarity between questions and the cards of a catalog version."""

    def __init__(self, embedder: dspy.Embedder, timeout: float, versions: int = 2) -> None:
        self._embedder = embedder
        self._timeout = timeout
        self._versions = versions
        self._tables: OrderedDict[str, asyncio.Task[np.ndarray]] = OrderedDict()

    async def _embed(self, texts: list[str]) -> np.ndarray:
        async with asyncio.timeout(self._timeout):
            vectors = await self._embedder.acall(texts, batch_size=BATCH_SIZE)
        return _unit_rows(np.asarray(vectors, dtype=np.float32))

    async def _table_vectors(self, prepared: PreparedCatalog) -> np.ndarray:
        version = prepared.version
        task = self._tables.get(version)
        if task is None:
            log.info("embedding %d table cards of version %s", len(prepared.cards), version)
            task = asyncio.create_task(self._embed([c.text for c in prepared.cards]))
            self._tables[version] = task
            while len(self._tables) > self._versions:
                self._tables.popitem(last=False)
        self._tables.move_to_end(version)
        try:
            # Shielded: a route that gives up must not cancel the work other routes wait for.
            return await asyncio.shield(task)
        except Exception:
            if self._tables.get(version) is task:
                del self._tables[version]  # the next route tries again
            raise

    async def scores(self, prepared: PreparedCatalog, question: str) -> np.ndarray | None:
        """Cosine similarity of ``question`` to each table, or None when the endpoint failed."""
        if not prepared.cards:
            return None
        try:
            tables, asked = await asyncio.gather(self._table_vectors(prepared), self._embed([question]))
        except Exception as exc:  # optional signal: any endpoint failure falls back to lexical
            name = type(exc).__name__
            log.warning("dense similarity unavailable (%s: %s); lexical shortlist only", name, exc)
            return None
        if tables.shape[0] != len(prepared.cards) or tables.shape[1] != asked.shape[1]:
            log.warning("embeddings endpoint returned vectors of the wrong shape; lexical shortlist only")
            return None
        similarity: np.ndarray = tables @ asked[0]
        return similarity

    async def aclose(self) -> None:
        """Stop table embeddings still being computed."""
        for task in self._tables.values():
            task.cancel()
        await asyncio.gather(*self._tables.values(), return_exceptions=True)
        self._tables.clear()


def build_table_embeddings(settings: Settings) -> TableEmbeddings | None:
    """Table embeddings through the configured endpoint, or None when none is configured."""
    if not settings.embedding_model:
        return None
    # As for the judge's LM: no price list fetched from the internet on the first call.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
    embedder = dspy.Embedder(
        settings.embedding_model,
        batch_size=BATCH_SIZE,
        # DSPy's cache does blocking disk I/O on the event loop and ignores api_base in its key.
        caching=False,
        api_base=settings.embedding_api_base,
        api_key=key or "not-needed",
        timeout=settings.llm_timeout,
    )
    return TableEmbeddings(embedder, settings.llm_timeout)
