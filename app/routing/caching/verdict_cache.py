"""The per-chunk verdict cache: a chunk judged once for a question is not sent to the LM again.

Keyed by the normalised question, a hash of the chunk's text (its cards, hence the catalog
content it shows) and the judge's program version (model, signature, instructions, demos).
Only chunks that were judged successfully are kept; a failed chunk is asked again next time.
It wraps a judge and is one to the route service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.routing.caching.lru import CacheCounters, LRUCache, normalize_question
from app.routing.deadline import Deadline
from app.routing.judging.coverage import Coverage
from app.routing.judging.outcome import ChunkOutcome
from app.routing.preparation.chunks import Chunk
from app.routing.ranking.merge import Vote
from app.routing.service import Judge

if TYPE_CHECKING:  # only an LM-backed judge is cached; the lexical path never imports DSPy
    from app.llm.backend import LMBackend

__all__ = ["VerdictCache"]

VerdictKey = tuple[str, str, str]


class VerdictCache:
    """A judge that answers a chunk already judged for the same question from memory."""

    def __init__(self, judge: Judge, capacity: int, program_version: str) -> None:
        self.inner = judge
        self.verdicts: LRUCache[VerdictKey, tuple[tuple[Vote, ...], int]] = LRUCache(capacity)
        self.program_version = program_version

    @property
    def backend(self) -> LMBackend:
        return self.inner.backend

    def _key(self, question: str, chunk: Chunk) -> VerdictKey:
        return normalize_question(question), chunk.digest, self.program_version

    async def judge(
        self,
        question: str,
        chunk: Chunk,
        deadline: Deadline,
        outcome: ChunkOutcome,
        coverage: Coverage | None = None,
    ) -> None:
        """The cached verdicts of this chunk for this question, or the judge's, into ``outcome``."""
        if self.verdicts.capacity <= 0:
            await self.inner.judge(question, chunk, deadline, outcome, coverage)
            return
        key = self._key(question, chunk)
        cached = self.verdicts.get(key)
        if cached is not None:
            votes, dropped = cached
            outcome.votes, outcome.dropped_names = list(votes), dropped
            outcome.answered = outcome.cached = True
            return
        await self.inner.judge(question, chunk, deadline, outcome, coverage)
        if outcome.answered and not outcome.failed:
            self.verdicts.put(key, (tuple(outcome.votes), outcome.dropped_names))

    def counters(self) -> CacheCounters:
        """Hits, misses and size of the verdict cache."""
        return self.verdicts.counters()
