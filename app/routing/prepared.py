"""Everything routing derives from one catalog version, computed once and shared.

Cards, the chunk plan, the BM25 index and the FK graph depend only on the catalog (and the
chunk settings), never on the question, so they are built when a snapshot is installed, off
the event loop, and every route reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog.model import Catalog
from app.routing.cards import TableCard, make_card
from app.routing.chunks import Chunk, plan_chunks
from app.routing.lexical import LexicalIndex
from app.routing.merge import fk_graph


@dataclass(frozen=True)
class PreparedCatalog:
    """A catalog snapshot with its derived routing structures."""

    catalog: Catalog
    cards: tuple[TableCard, ...]
    chunks: tuple[Chunk, ...]
    lexical: LexicalIndex
    graph: dict[str, set[str]]

    @property
    def version(self) -> str:
        return self.catalog.version


def prepare(catalog: Catalog, chunk_tokens: int, votes: int, seed: int) -> PreparedCatalog:
    """Build the derived structures (CPU-bound: call it in a worker thread)."""
    cards = tuple(make_card(t, chunk_tokens) for t in catalog.tables)
    chunks = tuple(plan_chunks(cards, chunk_tokens, votes, seed)) if cards else ()
    lexical = LexicalIndex([c.name for c in cards], [c.text for c in cards])
    return PreparedCatalog(catalog, cards, chunks, lexical, fk_graph(catalog.tables))
