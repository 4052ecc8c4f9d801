"""Dense similarity of a question to every table card, from an embeddings endpoint via ``dspy.Embedder``.

The endpoint is any OpenAI-compatible ``POST {api_base}/embeddings``; ``dspy.Embedder`` batches
the texts and shapes the vectors, around our own small HTTP call run in a worker thread.
(DSPy's string-model path goes through LiteLLM, whose async embedding call ran its logging
on our event loop, 0.18 s per call, and left sockets open; the test in
``tests/test_no_blocking.py`` caught both.)

Table vectors depend only on the catalog version, so they are computed once per version (the
first route of a version waits for them; routes arriving meanwhile share that computation)
and kept in memory for the last few versions. The question costs one embeddings call per
route: its vector is kept for a few recent questions, so the route memory's lookup
(``question_vector``) and the shortlist (``scores``) of one route share it. Dense similarity
is optional: when the endpoint fails, the route keeps the lexical shortlist and the failure
is logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import dspy
import httpx
import numpy as np

from app.llm.backend import OPENAI_API_BASE
from app.routing.preparation.prepared import PreparedCatalog
from app.settings import Settings

__all__ = ["EmbeddingsEndpoint", "TableEmbeddings", "build_table_embeddings"]

log = logging.getLogger(__name__)
BATCH_SIZE = 128
# Recent questions whose vectors (or failure) are kept: one route asks for its question twice.
QUESTIONS_KEPT = 64


class EmbeddingsEndpoint:
    """A synchronous callable for ``dspy.Embedder``: texts in, one vector per text out."""

    def __init__(self, model: str, api_base: str, api_key: str | None, timeout: float) -> None:
        # "openai/text-embedding-3-small" is DSPy's spelling; the endpoint wants the bare name.
        self.model = model.split("/", 1)[1] if "/" in model else model
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=api_base.rstrip("/"), headers=headers, timeout=timeout)

    def __call__(self, texts: list[str]) -> list[list[float]]:
        response = self._client.post("/embeddings", json={"model": self.model, "input": texts})
        response.raise_for_status()
        data = response.json()["data"]
        if not isinstance(data, list) or len(data) != len(texts):
            raise ValueError("the embeddings reply does not have one vector per text")
        return [item["embedding"] for item in sorted(data, key=lambda item: int(item["index"]))]

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class TableEmbeddings:
    """Cosine similarity between questions and the cards of a catalog version."""

    def __init__(
        self,
        embedder: dspy.Embedder,
        timeout: float,
        versions: int = 2,
        endpoint: EmbeddingsEndpoint | None = None,
    ) -> None:
        self._embedder = embedder
        self._endpoint = endpoint
        self._timeout = timeout
        self._versions = versions
        self._tables: OrderedDict[str, asyncio.Task[np.ndarray]] = OrderedDict()
        self._questions: OrderedDict[str, tuple[float, asyncio.Task[np.ndarray]]] = OrderedDict()

    async def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of ``texts`` (one row each), within the endpoint timeout; raises on failure."""
        return await self._embed(texts)

    async def _embed(self, texts: list[str]) -> np.ndarray:
        # The endpoint call is synchronous: in a worker thread, never on the event loop.
        async with asyncio.timeout(self._timeout):
            vectors = await asyncio.to_thread(self._embedder, texts, batch_size=BATCH_SIZE)
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

    async def _question(self, question: str) -> np.ndarray:
        kept = self._questions.get(question)
        now = time.monotonic()
        # A failure is reused for one timeout only: a route asking twice waits once, a later one tries again.
        if kept is None or (
            kept[1].done()
            and (kept[1].cancelled() or kept[1].exception() is not None)
            and now - kept[0] > self._timeout
        ):
            kept = (now, asyncio.create_task(self._embed([question])))
            self._questions[question] = kept
            while len(self._questions) > QUESTIONS_KEPT:
                self._questions.popitem(last=False)
        self._questions.move_to_end(question)
        vectors = await asyncio.shield(kept[1])
        vector: np.ndarray = vectors[0]
        return vector

    async def question_vector(self, question: str) -> np.ndarray | None:
        """The unit vector of ``question``, or None when the endpoint failed (logged, never raised)."""
        try:
            return await self._question(question)
        except Exception as exc:  # optional signal: the memory falls back to lexical similarity
            log.warning(
                "question embedding unavailable (%s: %s); lexical memory only", type(exc).__name__, exc
            )
            return None

    async def scores(self, prepared: PreparedCatalog, question: str) -> np.ndarray | None:
        """Cosine similarity of ``question`` to each table, or None when the endpoint failed."""
        if not prepared.cards:
            return None
        try:
            tables, asked = await asyncio.gather(self._table_vectors(prepared), self._question(question))
        except Exception as exc:  # optional signal: any endpoint failure falls back to lexical
            name = type(exc).__name__
            log.warning("dense similarity unavailable (%s: %s); lexical shortlist only", name, exc)
            return None
        if tables.shape[0] != len(prepared.cards) or tables.shape[1] != asked.shape[0]:
            log.warning("embeddings endpoint returned vectors of the wrong shape; lexical shortlist only")
            return None
        similarity: np.ndarray = tables @ asked
        return similarity

    async def aclose(self) -> None:
        """Stop table embeddings still being computed."""
        for task in self._tables.values():
            task.cancel()
        await asyncio.gather(*self._tables.values(), return_exceptions=True)
        self._tables.clear()
        questions = [task for _, task in self._questions.values()]
        for task in questions:
            task.cancel()
        await asyncio.gather(*questions, return_exceptions=True)
        self._questions.clear()
        if self._endpoint is not None:
            await asyncio.to_thread(self._endpoint.close)


def build_table_embeddings(settings: Settings) -> TableEmbeddings | None:
    """Table embeddings through the configured endpoint, or None when none is configured."""
    if not settings.embedding_model:
        return None
    key = settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None
    api_base = settings.embedding_api_base or OPENAI_API_BASE
    endpoint = EmbeddingsEndpoint(settings.embedding_model, api_base, key, settings.llm_timeout)
    embedder = dspy.Embedder(endpoint, batch_size=BATCH_SIZE, caching=False)
    return TableEmbeddings(embedder, settings.llm_timeout, endpoint=endpoint)
