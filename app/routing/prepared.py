"""Everything routing derives from one catalog version, computed once and shared.

Cards, the chunk plan, the BM25 index and the FK graph depend only on the catalog (and the
chunk settings), never on the question, so they are built when a snapshot is installed, off
the event loop, and every route reuses them. A route limited to some schemas gets a scope:
the subset of cards, re-planned into chunks (cheap: cards are already made).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from app.catalog.model import Catalog
from app.routing.cards import TableCard, make_card
from app.routing.chunks import Chunk, plan_chunks
from app.routing.lexical import LexicalIndex
from app.routing.merge import fk_graph


class UnknownSchemaError(ValueError):
    """A route asked for schemas the catalog does not have."""


@dataclass(frozen=True)
class RouteScope:
    """The tables one route may consider; ``names`` is None for the whole catalog."""

    names: frozenset[str] | None
    cards: tuple[TableCard, ...]
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True)
class PreparedCatalog:
    """A catalog snapshot with its derived routing structures."""

    catalog: Catalog
    cards: tuple[TableCard, ...]
    lexical: LexicalIndex
    graph: dict[str, set[str]]
    chunk_tokens: int
    votes: int
    seed: int
    full: RouteScope = field(init=False)

    def __post_init__(self) -> None:
        chunks = plan_chunks(self.cards, self.chunk_tokens, self.votes, self.seed) if self.cards else []
        object.__setattr__(self, "full", RouteScope(None, self.cards, tuple(chunks)))

    @property
    def version(self) -> str:
        return self.catalog.version

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return self.full.chunks

    def scope(self, schemas: Sequence[str] | None) -> RouteScope:
        """The scope of a route over ``schemas`` (None or empty: every table)."""
        if not schemas:
            return self.full
        wanted = set(schemas)
        present = {t.schema for t in self.catalog.tables}
        missing = sorted(wanted - present, key=str)
        if missing:
            raise UnknownSchemaError(f"unknown schemas: {', '.join(missing)}")
        cards = tuple(c for c, t in zip(self.cards, self.catalog.tables, strict=True) if t.schema in wanted)
        chunks = plan_chunks(cards, self.chunk_tokens, self.votes, self.seed)
        return RouteScope(frozenset(c.name for c in cards), cards, tuple(chunks))


def prepare(catalog: Catalog, chunk_tokens: int, votes: int, seed: int) -> PreparedCatalog:
    """Build the derived structures (CPU-bound: call it in a worker thread)."""
    cards = tuple(make_card(t, chunk_tokens) for t in catalog.tables)
    lexical = LexicalIndex([c.name for c in cards], [c.text for c in cards])
    return PreparedCatalog(catalog, cards, lexical, fk_graph(catalog.tables), chunk_tokens, votes, seed)
