"""BM25 over table cards: the lexical judge when no LM is configured, and a ranking prior.

Identifiers are split on underscores, dots and case changes (``orderLineItems`` and
``order_line_items`` give the same words) and stemmed, so a question's plain words meet the
warehouse's names. Indexing and scoring use the ``bm25s`` library (sparse matrices, fast).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

# bm25s sets its own logger to DEBUG when imported; its index-building chatter is noise here.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[A-Za-z]+|\d+")
# Card syntax and question boilerplate carry no signal about which table is meant.
_STOP = frozenset(STOPWORDS_EN) | {
    "null",
    "pk",
    "fk",
    "view",
    "table",
    "id",
    "how",
    "many",
    "much",
    "per",
    "which",
    "what",
    "list",
    "show",
    "give",
    "find",
    "me",
    "all",
    "each",
    "every",
    "whose",
    "who",
    "where",
    "when",
}


NAME_BOOST = 3


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1 << 17)
def _line_words(line: str) -> tuple[str, ...]:
    found = _WORD.findall(_CAMEL.sub(" ", line).lower())
    stemmed: list[str] = _stemmer().stemWords([w for w in found if len(w) > 1 and w not in _STOP])
    return tuple(stemmed)


def words(text: str) -> list[str]:
    """Lower-cased, stemmed words of ``text``, identifiers split on case and underscores."""
    # Card lines repeat across a warehouse (id, created_at, the same comments): each distinct
    # line is split and stemmed once, which makes indexing 10,000 cards several times faster.
    out: list[str] = []
    for line in text.split("\n"):
        out.extend(_line_words(line))
    return out


def name_words(name: str) -> list[str]:
    """The words of a qualified name's last part (the table's own name)."""
    return words(name.rsplit(".", 1)[-1])


class LexicalIndex:
    """A BM25 index over one catalog's cards; built once per catalog version."""

    def __init__(self, names: Sequence[str], texts: Sequence[str], name_boost: int = NAME_BOOST) -> None:
        # The table's own name says most about what it holds: its words count NAME_BOOST times,
        # so "orders" outranks a wide view that merely has an order_id column.
        documents = [name_words(n) * name_boost + words(t) for n, t in zip(names, texts, strict=True)]
        self._index(names, documents)

    @classmethod
    def from_words(cls, names: Sequence[str], documents: Sequence[list[str]]) -> LexicalIndex:
        """An index over documents already split into words (no name boost added)."""
        index = cls.__new__(cls)
        index._index(names, documents)
        return index

    def _index(self, names: Sequence[str], documents: Sequence[list[str]]) -> None:
        self.names = list(names)
        self._bm25 = bm25s.BM25()
        self._bm25.index([d or ["_empty_"] for d in documents], show_progress=False)

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every table for ``question`` (0 where no word matches)."""
        tokens = [t for t in words(question) if t in self._bm25.vocab_dict]
        if not tokens or not self.names:
            return np.zeros(len(self.names), dtype=np.float32)
        result: np.ndarray = self._bm25.get_scores(tokens)
        return result
