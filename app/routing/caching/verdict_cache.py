"""The per-chunk verdict cache: a chunk judged once for a question is not sent to the LM again.

Keyed by the normalised question, a hash of the chunk's text (its cards, hence the catalog
content it shows) and the judge's program version (model, signature, instructions, demos).
Only chunks that were judged successfully are kept; a failed chunk is asked again next time.
"""

from __future__ import annotations

import hashlib
import json

from app.llm.backend import LMBackend
from app.routing.caching.lru import CacheCounters, LRUCache, normalize_question
from app.routing.deadline import Deadline
from app.routing.judging.coverage import Coverage
from app.routing.judging.judge import ChunkOutcome, LMJudge
from app.routing.judging.signature import PROGRAM_VERSION
from app.routing.preparation.chunks import Chunk
from app.routing.ranking.merge import Vote

__all__ = ["CachingJudge", "program_version"]

VerdictKey = tuple[str, bytes, str]


def program_version(judge: LMJudge) -> str:
    """The model and a digest of the DSPy program's state: a loaded optimisation changes it."""
    state = json.dumps(judge.program.dump_state(), sort_keys=True, default=str)
    digest = hashlib.blake2b(state.encode(), digest_size=8).hexdigest()
    return f"{PROGRAM_VERSION}:{judge.backend.model}:{digest}"


class CachingJudge(LMJudge):
    """An LM judge that answers a chunk it has judged for the same question from memory."""

    def __init__(self, backend: LMBackend, timeout: float, capacity: int) -> None:
        super().__init__(backend, timeout)
        self.verdicts: LRUCache[VerdictKey, tuple[tuple[Vote, ...], int]] = LRUCache(capacity)
        self.program_version = program_version(self)

    def _key(self, question: str, chunk: Chunk) -> VerdictKey:
        digest = hashlib.blake2b(chunk.text.encode(), digest_size=16).digest()
        return normalize_question(question), digest, self.program_version

    async def judge(
        self,
        question: str,
        chunk: Chunk,
        deadline: Deadline,
        outcome: ChunkOutcome,
        coverage: Coverage | None = None,
    ) -> None:
        """The cached verdicts of this chunk for this question, or the LM's, into ``outcome``."""
        if self.verdicts.capacity <= 0:
            await super().judge(question, chunk, deadline, outcome, coverage)
            return
        key = self._key(question, chunk)
        cached = self.verdicts.get(key)
        if cached is not None:
            votes, dropped = cached
            outcome.votes, outcome.dropped_names = list(votes), dropped
            outcome.answered = outcome.cached = True
            return
        await super().judge(question, chunk, deadline, outcome, coverage)
        if outcome.answered and not outcome.failed:
            self.verdicts.put(key, (tuple(outcome.votes), outcome.dropped_names))

    def counters(self) -> CacheCounters:
        """Hits, misses and size of the verdict cache."""
        return self.verdicts.counters()
