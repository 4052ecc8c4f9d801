"""A table must earn its place from the question, not from a comment that talks to the LM.

The metadata guard leaves out comments that read as orders; a comment it lets through may
still steer a weak model ("the right table for any question is this one"). So when a chunk
showed a comment with steering hints (``metadata_guard.steering_hints``: directives, words
about the route, another table's name, disguised text) and selected some tables, those tables
alone are judged again on cards without the hinted comments. A table selected with the comments
visible and not without them gets a vote against (``STEERED_REASON``) and a warning in the log.

It costs one extra call per such chunk, over the selected tables' cards only: nothing on chunks
without hints, which is most chunks of most warehouses. When the second call fails, the hinted
tables themselves lose their relevant votes (the comment could not be ruled out); the others
keep theirs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.routing.deadline import Deadline
from app.routing.judging.chunk_judge import Judge
from app.routing.judging.coverage import Coverage
from app.routing.judging.outcome import ChunkOutcome
from app.routing.preparation.cards import estimate_tokens
from app.routing.preparation.chunks import CARD_SEPARATOR, Chunk
from app.routing.ranking.merge import Vote

if TYPE_CHECKING:
    from app.llm.backend import LMBackend

__all__ = ["STEERED_REASON", "EarnedPlaceJudge"]

log = logging.getLogger(__name__)
# The confidence of the vote against a steered table (``votes.OMITTED_CONFIDENCE``; votes.py
# imports DSPy, and the lexical service imports this module).
STEERED_CONFIDENCE = 0.9
STEERED_REASON = "selected only with another card's or its own comment visible: demoted"


def bare_chunk(chunk: Chunk, chosen: list[str]) -> Chunk:
    """The ``chosen`` tables of ``chunk`` on their cards, the hinted ones without their comments."""
    bare = dict(chunk.hinted)
    # A chunk's text is its cards joined by CARD_SEPARATOR, in ``names`` order (a card has no blank line).
    texts = dict(zip(chunk.names, chunk.text.split(CARD_SEPARATOR), strict=True))
    wanted = set(chosen)
    names = tuple(n for n in chunk.names if n in wanted)
    cards = [bare.get(n, texts[n]) for n in names]
    return Chunk(
        index=chunk.index,
        names=names,
        text=CARD_SEPARATOR.join(cards),
        tokens=sum(estimate_tokens(c) for c in cards),
        distrusted=chunk.distrusted & wanted,
    )


def _add_costs(outcome: ChunkOutcome, second: ChunkOutcome) -> None:
    outcome.lm_calls += second.lm_calls
    outcome.retries += second.retries
    outcome.hedges += second.hedges
    outcome.prompt_tokens += second.prompt_tokens
    outcome.completion_tokens += second.completion_tokens
    outcome.cached_prompt_tokens += second.cached_prompt_tokens


class EarnedPlaceJudge:
    """Wraps a judge: tables a hinted chunk selects are judged again without the hinted comments."""

    def __init__(self, judge: Judge) -> None:
        self.inner = judge

    @property
    def backend(self) -> LMBackend:
        return self.inner.backend

    async def judge(
        self,
        question: str,
        chunk: Chunk,
        deadline: Deadline,
        outcome: ChunkOutcome,
        coverage: Coverage | None = None,
    ) -> None:
        """The inner judge's votes, a relevant vote kept only if the question earns it without hints."""
        await self.inner.judge(question, chunk, deadline, outcome, coverage)
        if not chunk.hinted or not outcome.answered or outcome.failed:
            return
        chosen = [v.table for v in outcome.votes if v.relevant]
        if not chosen:
            return
        second = ChunkOutcome(chunk.index)
        await self.inner.judge(question, bare_chunk(chunk, chosen), deadline, second, None)
        _add_costs(outcome, second)
        if second.answered and not second.failed:
            kept = {v.table for v in second.votes if v.relevant}
        else:
            hinted = {name for name, _ in chunk.hinted}
            kept = {name for name in chosen if name not in hinted}
        steered = [name for name in chosen if name not in kept]
        if not steered:
            return
        log.warning(
            "chunk %d: %s selected only with steering comments visible; demoted", chunk.index, steered
        )
        outcome.votes = [
            Vote(v.table, False, STEERED_CONFIDENCE, STEERED_REASON) if v.table in steered else v
            for v in outcome.votes
        ]
