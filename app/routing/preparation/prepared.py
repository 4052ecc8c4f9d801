"""Everything routing derives from one catalog version, computed once and shared.

Cards, the chunk plan, the BM25 index and the FK graph depend only on the catalog (and the
chunk settings), never on the question, so they are built when a snapshot is installed, off
the event loop, and every route reuses them. A route limited to some schemas gets a scope:
the subset of cards, re-planned into chunks (cheap: cards are already made). An API key's
grant (``app.routing.preparation.grants``) narrows the scope the same way, before the schemas do; each
grant is computed once per catalog version and kept with it.

For the shortlist (``app.routing.retrieval.shortlist``) it also keeps a BM25 index over whole schemas
(a schema's cards as one document), each table's schema, and the FK edges as index arrays.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.catalog.copies import TableEvidence, table_evidence
from app.catalog.fk_graph import fk_graph
from app.catalog.identifiers import unquote_schema
from app.catalog.model import Catalog
from app.routing.preparation.cards import TableCard, compact_card, make_card
from app.routing.preparation.chunks import Chunk, plan_chunks
from app.routing.preparation.grants import TableGrant, visible_tables
from app.routing.preparation.lexical import NAME_BOOST, LexicalIndex, name_words, words
from app.routing.preparation.metadata_guard import catalog_names

log = logging.getLogger(__name__)
# Distinct grants kept per catalog version; past it they are computed again (many keys, few grants).
MAX_GRANTS = 256


class UnknownSchemaError(ValueError):
    """A route asked for schemas the catalog does not have."""


@dataclass(frozen=True)
class RouteScope:
    """The tables one route may consider; ``names`` is None for the whole catalog."""

    names: frozenset[str] | None
    cards: tuple[TableCard, ...]
    chunks: tuple[Chunk, ...]
    mask: np.ndarray | None = None  # per catalog table: inside the scope (None: every table)
    grant: TableGrant | None = None  # the key's view: its cards and FK graph

    def card(self, card: TableCard) -> TableCard:
        """A catalog card as this scope shows it (a grant hides FKs to tables it does not see)."""
        return card if self.grant is None else self.grant.card(card)


@dataclass(frozen=True)
class PreparedCatalog:
    """A catalog snapshot with its derived routing structures."""

    catalog: Catalog
    cards: tuple[TableCard, ...]
    lexical: LexicalIndex
    graph: dict[str, set[str]]
    schema_lexical: LexicalIndex
    table_schema: np.ndarray  # per table: its schema's position in schema_lexical.names
    fk_edges: tuple[np.ndarray, np.ndarray]  # (table, neighbour) index pairs, both directions
    chunk_tokens: int
    votes: int
    seed: int
    compact: dict[str, TableCard] = field(default_factory=dict, repr=False, compare=False)
    # Copies, backups and empty tables, by qualified name (app.catalog.copies).
    evidence: dict[str, TableEvidence] = field(default_factory=dict, repr=False, compare=False)
    full: RouteScope = field(init=False)
    _position: dict[str, int] = field(init=False, repr=False, compare=False)
    # Grants by pattern set, and their whole-grant scopes: computed on first use, bounded.
    _grants: dict[tuple[str, ...], tuple[TableGrant, RouteScope] | None] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        chunks = plan_chunks(self.cards, self.chunk_tokens, self.votes, self.seed) if self.cards else []
        object.__setattr__(self, "full", RouteScope(None, self.cards, tuple(chunks)))
        object.__setattr__(self, "_position", {c.name: i for i, c in enumerate(self.cards)})

    @property
    def version(self) -> str:
        return self.catalog.version

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return self.full.chunks

    def grant(self, patterns: Sequence[str] | None) -> TableGrant | None:
        """The grant of ``patterns`` over this catalog (None: no patterns, or every table visible)."""
        found = self._granted(patterns)
        return None if found is None else found[0]

    def _granted(self, patterns: Sequence[str] | None) -> tuple[TableGrant, RouteScope] | None:
        if patterns is None:
            return None
        key = tuple(sorted(set(patterns)))
        if key not in self._grants:
            if len(self._grants) >= MAX_GRANTS:
                self._grants.clear()
            grant = visible_tables(self.catalog.tables, key, self.chunk_tokens, self.evidence)
            self._grants[key] = None if grant is None else (grant, self._narrowed(None, grant))
        return self._grants[key]

    def scope(self, schemas: Sequence[str] | None, patterns: Sequence[str] | None = None) -> RouteScope:
        """The scope of a route over ``schemas`` (None or empty: every table) seen through ``patterns``.

        ``patterns`` are an API key's grant on this source (None: every table). A schema only
        hidden tables live in is as unknown as one that does not exist.
        """
        granted = self._granted(patterns)
        if not schemas:
            return self.full if granted is None else granted[1]
        # A schema may be written double-quoted, as answers print it ("a.b"); or as the catalog names it.
        schemas = [unquote_schema(s) for s in schemas]
        grant = None if granted is None else granted[0]
        present = {t.schema for t in self.catalog.tables if grant is None or t.qualified_name in grant.names}
        missing = sorted(set(schemas) - present, key=str)
        if missing:
            raise UnknownSchemaError(f"unknown schemas: {', '.join(missing)}")
        return self._narrowed(set(schemas), grant)

    def _narrowed(self, schemas: set[str] | None, grant: TableGrant | None) -> RouteScope:
        tables = self.catalog.tables
        keep = [
            i
            for i, t in enumerate(tables)
            if (schemas is None or t.schema in schemas) and (grant is None or t.qualified_name in grant.names)
        ]
        cards = tuple(self.cards[i] if grant is None else grant.card(self.cards[i]) for i in keep)
        mask = np.zeros(len(tables), dtype=bool)
        mask[keep] = True
        chunks = plan_chunks(cards, self.chunk_tokens, self.votes, self.seed)
        return RouteScope(frozenset(c.name for c in cards), cards, tuple(chunks), mask, grant)

    def position(self, name: str) -> int | None:
        """The catalog position of the table ``name`` (None: the catalog lacks it)."""
        return self._position.get(name)

    def card(self, name: str) -> TableCard:
        """The full card of the table ``name`` (KeyError for one the catalog lacks)."""
        return self.cards[self._position[name]]

    def plan(self, cards: Sequence[TableCard]) -> tuple[Chunk, ...]:
        """Chunks over some of the cards (a shortlist), with this catalog's chunk settings."""
        return tuple(plan_chunks(cards, self.chunk_tokens, self.votes, self.seed))

    def first_pass(self, names: Sequence[str], chunk_tokens: int) -> tuple[Chunk, ...]:
        """One vote each over the compact cards of ``names``, in chunks of ``chunk_tokens``.

        The plan depends on the names alone (in catalog order), so the same tables give the
        same chunk texts route after route: the provider's prefix cache serves them.
        """
        wanted = set(names)
        cards = [self.compact[c.name] for c in self.cards if c.name in wanted]
        return tuple(plan_chunks(cards, chunk_tokens, 1, self.seed))


def _schema_index(catalog: Catalog, card_words: Sequence[list[str]]) -> tuple[LexicalIndex, np.ndarray]:
    documents: dict[str, list[str]] = defaultdict(list)
    for table, found in zip(catalog.tables, card_words, strict=True):
        documents[table.schema or ""].extend(found)
    names = sorted(documents)
    position = {name: i for i, name in enumerate(names)}
    table_schema = np.array([position[t.schema or ""] for t in catalog.tables], dtype=np.int32)
    return LexicalIndex.from_words(names, [documents[n] for n in names]), table_schema


def _edges(catalog: Catalog, graph: dict[str, set[str]]) -> tuple[np.ndarray, np.ndarray]:
    position = {t.qualified_name: i for i, t in enumerate(catalog.tables)}
    pairs = [(position[a], position[b]) for a, linked in graph.items() for b in linked]
    if not pairs:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    edges = np.array(pairs, dtype=np.int32)
    return edges[:, 0].copy(), edges[:, 1].copy()


# A warehouse where a pattern misfires on every comment must not flood the log at each refresh.
MAX_UNTRUSTED_WARNINGS = 20


def _warn_untrusted(source: str, cards: Sequence[TableCard]) -> None:
    """Log the tables whose metadata reads as instructions to the LM (``metadata_guard``)."""
    flagged = [c for c in cards if c.quarantined or c.distrusted]
    for card in flagged[:MAX_UNTRUSTED_WARNINGS]:
        left_out = f"left out of its card: {', '.join(card.quarantined)}" if card.quarantined else ""
        named = "its name reads as instructions, the LM's verdict on it is ignored" if card.distrusted else ""
        log.warning(
            "source %s, table %r: metadata reads as instructions to the LM; %s",
            source,
            card.name,
            "; ".join(part for part in (left_out, named) if part),
        )
    if len(flagged) > MAX_UNTRUSTED_WARNINGS:
        log.warning(
            "source %s: %d more tables with metadata that reads as instructions to the LM",
            source,
            len(flagged) - MAX_UNTRUSTED_WARNINGS,
        )


def _hint(evidence: dict[str, TableEvidence], name: str) -> str:
    found = evidence.get(name)
    return "" if found is None else found.hint()


def prepare(
    catalog: Catalog, chunk_tokens: int, votes: int, seed: int, evidence_on: bool = True
) -> PreparedCatalog:
    """Build the derived structures (CPU-bound: call it in a worker thread).

    ``evidence_on=False`` leaves copies and empty tables without hints or demotion.
    """
    started = time.perf_counter()
    names = catalog_names(catalog.tables)
    evidence = table_evidence(catalog.tables) if evidence_on else {}
    cards = tuple(
        make_card(t, chunk_tokens, names, _hint(evidence, t.qualified_name)) for t in catalog.tables
    )
    compact = {t.qualified_name: compact_card(t) for t in catalog.tables}
    # Each card is split into words once, for both the table and the schema index.
    card_words = [words(c.text) for c in cards]
    card_names = [c.name for c in cards]
    lexical = LexicalIndex.from_words(
        card_names,
        [name_words(n) * NAME_BOOST + found for n, found in zip(card_names, card_words, strict=True)],
    )
    _warn_untrusted(catalog.source, cards)
    graph = fk_graph(catalog.tables)
    schema_lexical, table_schema = _schema_index(catalog, card_words)
    prepared = PreparedCatalog(
        catalog,
        cards,
        lexical,
        graph,
        schema_lexical,
        table_schema,
        _edges(catalog, graph),
        chunk_tokens,
        votes,
        seed,
        compact,
        evidence,
    )
    log.info(
        "prepared %s version %s for routing: %d cards, %d chunks, in %.0f ms",
        catalog.source,
        catalog.version,
        len(cards),
        len(prepared.chunks),
        (time.perf_counter() - started) * 1000,
    )
    return prepared
