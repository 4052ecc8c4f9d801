"""Packing table cards into chunks by token budget, each table in ``votes`` different chunks."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.routing.preparation.cards import TableCard

CARD_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One LM prompt's worth of table cards."""

    index: int
    names: tuple[str, ...]
    text: str
    tokens: int
    # Tables whose names read as instructions to the LM (cards' ``distrusted``): no relevant vote.
    distrusted: frozenset[str] = frozenset()
    # (table, card without comments) of the cards whose comments carry steering hints: a table
    # this chunk selects must be selected again on cards without them (``judging.earned``).
    hinted: tuple[tuple[str, str], ...] = ()
    # A digest of ``text``, computed once per chunk: the verdict cache's key and the prompt-cache
    # hint both name a chunk by it, on every call.
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.blake2b(self.text.encode(), digest_size=16).hexdigest())


def _pack(cards: Sequence[TableCard], budget: int) -> list[list[TableCard]]:
    """Greedy packing into bins of about equal size, none over ``budget`` (unless one card is)."""
    total = sum(c.tokens for c in cards)
    n_bins = max(1, -(-total // budget))
    # Aim for equal bins so no chunk is a straggler; the budget is the hard cap.
    target = min(budget, -(-total // n_bins))
    bins: list[list[TableCard]] = [[]]
    used = 0
    for card in cards:
        if bins[-1] and (used + card.tokens > budget or used >= target):
            bins.append([])
            used = 0
        bins[-1].append(card)
        used += card.tokens
    return bins


def plan_chunks(cards: Sequence[TableCard], budget: int, votes: int, seed: int) -> list[Chunk]:
    """Chunks such that every card lands in ``votes`` chunks with different neighbours.

    Each vote round packs a seeded shuffle of all cards, so a table meets other neighbours
    in each round and the plan is the same for the same seed (a route is reproducible).
    """
    chunks: list[Chunk] = []
    for round_ in range(votes):
        order = list(cards)
        random.Random(f"{seed}:{round_}").shuffle(order)
        for group in _pack(order, budget):
            chunks.append(
                Chunk(
                    index=len(chunks),
                    names=tuple(c.name for c in group),
                    text=CARD_SEPARATOR.join(c.text for c in group),
                    tokens=sum(c.tokens for c in group),
                    distrusted=frozenset(c.name for c in group if c.distrusted),
                    hinted=tuple((c.name, c.bare) for c in group if c.bare is not None),
                )
            )
    return chunks
