"""Extra votes: the tables the first round left unsettled are judged again, in fresh chunk mixes.

After the first round a table is unsettled when its votes disagree without one side leading by
two, or when it has a single vote (its other chunks failed) and its probability of relevance
sits near the decision (between ``low`` and ``high``). A table on whose votes every chunk
agreed is settled, whatever its score: with fpr 0.05 a few wrong tables per route get two
votes for, and the ranking (the prior breaks their tie with gold tables) is left to place them.

Only the unsettled tables are asked about again, packed together in chunks of their own (so
each meets new neighbours: a judge's mistakes depend on what else it reads), one more vote per
round, until every table is settled, ``max_rounds`` have run, or the route's extra-vote budget
is spent: ``max_votes`` table verdicts, and ``token_share`` of the first round's estimated
tokens (within the request's token budget). Tables on which every vote agreed cost nothing more.

The rounds run under the route's deadline and the backend's one limiter, like the first; the
tables still unsettled when the deadline or the budget stops them are listed in the answer.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from app.routing.deadline import Deadline
from app.routing.judging.outcome import ChunkOutcome
from app.routing.plan import estimated_tokens
from app.routing.preparation.cards import TableCard, estimate_tokens
from app.routing.preparation.chunks import Chunk, plan_chunks
from app.routing.ranking.merge import Vote
from app.routing.ranking.relevance import RelevanceScorer, probability

__all__ = ["ExtraRounds", "ExtraVotes", "extra_rounds", "unsettled_tables"]

# A chunk of fewer unsettled tables is filled up with settled ones to this many, so a table
# judged alone twice still meets new neighbours (and a new chunk, not a cached verdict).
MIN_MIX = 6
# Votes for and against that settle a table whose votes disagree: one side leads by this many.
LEAD_TO_SETTLE = 2
# Seeds of the extra rounds' shuffles, apart from the first round's.
_SEED_STRIDE = 1_000_003

JudgeChunks = Callable[[Sequence[Chunk]], Awaitable[list[ChunkOutcome]]]


@dataclass(frozen=True, slots=True)
class ExtraVotes:
    """The per-route extra-vote budget and when a table counts as settled."""

    max_votes: int = 400  # table verdicts the extra rounds may ask for; 0: no extra votes
    token_share: float = 0.3  # of the first round's estimated tokens
    max_rounds: int = 3
    low: float = 0.05  # probabilities between low and high are near the decision
    high: float = 0.85

    @property
    def enabled(self) -> bool:
        return self.max_votes > 0 and self.token_share > 0 and self.max_rounds > 0


@dataclass(slots=True)
class ExtraRounds:
    """What the extra rounds did."""

    outcomes: list[ChunkOutcome] = field(default_factory=list)
    rounds: int = 0
    votes_asked: int = 0
    unsettled: list[str] = field(default_factory=list)  # still unsettled when they stopped
    cut_by_deadline: bool = False


def unsettled_tables(votes: Sequence[Vote], scorer: RelevanceScorer, extra: ExtraVotes) -> list[str]:
    """Tables whose votes disagree, or whose one vote leaves them near the decision; nearest first."""
    counts: dict[str, list[int]] = {}
    for vote in votes:
        tally = counts.setdefault(vote.table, [0, 0])
        tally[0 if vote.relevant else 1] += 1
    odds = scorer.log_odds(votes)
    open_: list[str] = []
    for name, (for_, against) in counts.items():
        split = for_ > 0 and against > 0 and abs(for_ - against) < LEAD_TO_SETTLE
        lone = for_ + against < 2 and extra.low < probability(odds[name]) < extra.high
        if split or lone:
            open_.append(name)
    return sorted(open_, key=lambda n: (abs(odds[n]), n))


def _mix(
    names: Sequence[str], settled: Sequence[str], card: Callable[[str], TableCard], seed: int
) -> list[TableCard]:
    """The cards of ``names``, filled up with settled tables to MIN_MIX."""
    chosen = list(names)
    if len(chosen) < MIN_MIX and settled:
        fill = random.Random(seed).sample(list(settled), min(len(settled), MIN_MIX - len(chosen)))
        chosen += fill
    return [card(n) for n in chosen]


@dataclass(frozen=True, slots=True)
class _Planner:
    """Plans one extra round's chunks within what is left of the budget."""

    card: Callable[[str], TableCard]
    chunk_tokens: int
    seed: int
    question_tokens: int

    def chunks(self, names: Sequence[str], settled: Sequence[str], round_: int, index: int) -> list[Chunk]:
        seed = self.seed + _SEED_STRIDE * (round_ + 1)
        cards = _mix(names, settled, self.card, seed)
        planned = plan_chunks(cards, self.chunk_tokens, 1, seed)
        return [Chunk(index + i, c.names, c.text, c.tokens, c.distrusted) for i, c in enumerate(planned)]

    def within(
        self, names: list[str], settled: Sequence[str], round_: int, index: int, *, votes: int, tokens: int
    ) -> list[Chunk]:
        """The round's chunks for as many of ``names`` (nearest first) as ``votes`` and ``tokens`` allow."""
        names = names[:votes]
        while names:
            chunks = self.chunks(names, settled, round_, index)
            spend = estimated_tokens(chunks, self.question_tokens)
            asked = sum(len(c.names) for c in chunks)
            if spend <= tokens and asked <= votes:
                return chunks
            share = min(tokens / spend if spend else 1.0, votes / asked if asked else 1.0)
            names = names[: min(len(names) - 1, int(len(names) * share * 0.95))]
        return []


async def extra_rounds(
    judge_chunks: JudgeChunks,
    first_votes: Sequence[Vote],
    scorer: RelevanceScorer,
    extra: ExtraVotes,
    *,
    question: str,
    judged: Sequence[str],
    card: Callable[[str], TableCard],
    chunk_tokens: int,
    seed: int,
    first_tokens: int,
    token_room: int | None,
    deadline: Deadline,
    first_index: int,
) -> ExtraRounds:
    """Judge the unsettled tables again until they settle, the budget is spent or the deadline comes.

    ``judged`` are the route's judged tables (the settled ones fill up small chunks), ``card``
    gives a table's card as the route shows it; ``first_tokens`` is the first round's estimated
    spend (the budget is a share of it); ``token_room`` what the request's token budget leaves
    (None: no budget).
    """
    result = ExtraRounds()
    votes = list(first_votes)
    # Listed even when extra votes are off: the answer says which tables the votes left open.
    open_ = unsettled_tables(votes, scorer, extra)
    tokens_left = int(extra.token_share * first_tokens)
    if token_room is not None:
        tokens_left = min(tokens_left, token_room)
    planner = _Planner(card, chunk_tokens, seed, estimate_tokens(question))
    index = first_index
    while extra.enabled and open_ and result.rounds < extra.max_rounds:
        if deadline.remaining() <= 0:
            result.cut_by_deadline = True
            break
        settled = sorted(set(judged) - set(open_))
        votes_left = extra.max_votes - result.votes_asked
        chunks = planner.within(open_, settled, result.rounds, index, votes=votes_left, tokens=tokens_left)
        if not chunks:
            break
        outcomes = await judge_chunks(chunks)
        result.rounds += 1
        result.outcomes += outcomes
        result.votes_asked += sum(len(c.names) for c in chunks)
        tokens_left -= estimated_tokens(chunks, planner.question_tokens)
        index += len(chunks)
        if any(not o.answered and not o.failed for o in outcomes):
            result.cut_by_deadline = True
        votes += [v for o in outcomes for v in o.votes]
        open_ = unsettled_tables(votes, scorer, extra)
        if result.cut_by_deadline:
            break
    result.unsettled = open_
    return result
