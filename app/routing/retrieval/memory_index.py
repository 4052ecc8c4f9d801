"""Past questions of one source, searchable by similarity to a new question (the route memory).

Similarity is the cosine of binary tf-idf vectors over the same stemmed words as the BM25 index
(``app.routing.preparation.lexical.words``): a past question phrased with the same rare words
scores near 1, one sharing only common words near 0. An inverted index (word → entry
positions, numpy arrays) touches only the entries that share a word with the question, so a
lookup over 100,000 remembered questions stays within a few milliseconds (``bench/memory.py``).

With embeddings configured, entries also get a vector (``memory_vectors``), and ``similar``
takes the dense hits of the question's vector too: an entry's similarity is the higher of
its lexical cosine and its rescaled dense cosine (a max, not a rank fusion: the similarity is
a prior's size and the memory's confidence, so it must keep its scale; and a paraphrase that
shares no rare word has a lexical cosine near 0, which a weighted mean would halve).

Entries without a question (a query log's SQL) add no searchable text; they count which tables
are used together (``co_used``). An entry with a question needs no such count: its tables are
lent together whenever it is found.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from app.routing.preparation.lexical import words
from app.routing.retrieval.memory_vectors import DenseHits, MemoryVectors

__all__ = ["MemoryHit", "MemoryIndex", "MemoryMatch"]

# Norms are computed again when the index grew by this share since they last were (idf moves).
_RENORM_GROWTH = 0.1
# Words in more than this share of the entries (and at least COMMON_FROM of them) are not summed.
COMMON_SHARE = 0.05
COMMON_FROM = 1000
# Overlaps fewer than 1/SPARSE_BELOW of the entries are summed by sorting them; more, densely.
SPARSE_BELOW = 20


@dataclass(frozen=True, slots=True)
class MemoryHit:
    """A past question similar to the new one."""

    entry_id: int
    similarity: float  # cosine in (0, 1]
    tables: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MemoryMatch:
    """What the memory knows about one question: the similar past questions, best first."""

    hits: tuple[MemoryHit, ...] = ()

    @property
    def best(self) -> float:
        """The similarity of the closest past question (0: none)."""
        return self.hits[0].similarity if self.hits else 0.0

    def table_scores(self) -> dict[str, float]:
        """Per table: the similarity of the closest past question that used it."""
        scores: dict[str, float] = {}
        for hit in self.hits:
            for table in hit.tables:
                scores.setdefault(table, hit.similarity)
        return scores


class MemoryIndex:
    """The remembered questions of one source (append-only; forgetting builds a new index)."""

    def __init__(self) -> None:
        self._vocabulary: dict[str, int] = {}
        self._postings: list[list[int]] = []
        self._arrays: dict[int, np.ndarray] = {}  # word → positions, rebuilt when the word gained some
        self._entry_words: list[np.ndarray] = []
        self._ids: list[int] = []
        self._tables: list[tuple[str, ...]] = []
        self._questions: list[str] = []
        self.vectors = MemoryVectors()
        self._norms = np.zeros(0, dtype=np.float32)
        self._normed = 0  # entries when the norms were last computed
        self._co_used: dict[str, Counter[str]] = defaultdict(Counter)
        self._idf_cache: np.ndarray | None = None
        self.entries = 0  # every entry loaded, with or without a question
        self.top_id = 0

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, entry_id: int, question: str | None, tables: Sequence[str]) -> None:
        """Remember one entry (ids must grow)."""
        self.entries += 1
        self.top_id = max(self.top_id, entry_id)
        found = sorted(set(words(question))) if question else []
        if not found:
            # A query log's SQL: no question to find it by, but its tables go together.
            for table in tables:
                for other in tables:
                    if other != table:
                        self._co_used[table][other] += 1
            return
        position = len(self._ids)
        self._idf_cache = None
        ids = []
        for word in found:
            index = self._vocabulary.setdefault(word, len(self._vocabulary))
            if index == len(self._postings):
                self._postings.append([])
            self._postings[index].append(position)
            self._arrays.pop(index, None)
            ids.append(index)
        self._entry_words.append(np.array(ids, dtype=np.int32))
        self._ids.append(entry_id)
        self._tables.append(tuple(tables))
        self._questions.append(question or "")

    def entry_ids(self) -> set[int]:
        """The ids of every entry with a question."""
        return set(self._ids)

    def without_vectors(self) -> list[tuple[int, int, str]]:
        """``(position, entry id, question)`` of every entry with a question and no vector yet."""
        return [(p, self._ids[p], q) for p, q in enumerate(self._questions) if not self.vectors.has(p)]

    def entry_tables(self) -> list[tuple[str, ...]]:
        """The tables of every entry with a question."""
        return list(self._tables)

    def _idf(self) -> np.ndarray:
        if self._idf_cache is not None:
            return self._idf_cache
        df = np.fromiter((len(p) for p in self._postings), dtype=np.float32, count=len(self._postings))
        n = len(self._ids)
        self._idf_cache = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        return self._idf_cache

    def _refresh_norms(self, idf: np.ndarray) -> None:
        """Every entry's norm: all again (vectorised) when the index grew enough for idf to move."""
        n = len(self._ids)
        if len(self._norms) == n:
            return
        if n - self._normed > _RENORM_GROWTH * self._normed:
            flat = np.concatenate(self._entry_words)
            starts = np.cumsum([0] + [len(w) for w in self._entry_words[:-1]])
            self._norms = np.sqrt(np.add.reduceat(idf[flat] ** 2, starts)).astype(np.float32)
            self._normed = n
            # Posting arrays built now, in one go, rather than by the first lookups that need them.
            self._arrays = {w: np.array(p, dtype=np.int32) for w, p in enumerate(self._postings)}
            return
        extra = [math.sqrt(float((idf[w] ** 2).sum())) for w in self._entry_words[len(self._norms) :]]
        self._norms = np.concatenate([self._norms, np.array(extra, dtype=np.float32)])

    def _positions(self, word: int) -> np.ndarray:
        array = self._arrays.get(word)
        if array is None:
            array = np.array(self._postings[word], dtype=np.int32)
            self._arrays[word] = array
        return array

    def _overlaps(self, query: Sequence[int], weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entries sharing a word with the question, and the summed weight of those words.

        A word in more than ``COMMON_SHARE`` of a large memory's entries is left out of the sum
        (it still counts in the question's norm): its weight is small, its posting list long,
        and it alone would make a 100,000-entry lookup scan most entries.
        """
        common = max(COMMON_FROM, COMMON_SHARE * len(self._ids))
        postings, kept = [], []
        for word, weight in zip(query, weights, strict=True):
            if len(self._postings[word]) <= common:
                postings.append(self._positions(word))
                kept.append(weight)
        if not postings:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        flat = np.concatenate(postings)
        repeated = np.repeat(np.asarray(kept, dtype=np.float32), [len(p) for p in postings])
        if len(flat) * SPARSE_BELOW < len(self._ids):  # few overlaps: sort them, not the whole memory
            candidates, inverse = np.unique(flat, return_inverse=True)
            return candidates, np.bincount(inverse, weights=repeated).astype(np.float32)
        sums = np.bincount(flat, weights=repeated, minlength=len(self._ids))
        candidates = np.flatnonzero(sums)
        return candidates, sums[candidates].astype(np.float32)

    def similar(
        self, question: str, limit: int, min_similarity: float, dense: DenseHits | None = None
    ) -> MemoryMatch:
        """The ``limit`` past questions most similar to ``question`` (at least ``min_similarity``).

        ``dense``: the entries ``vectors.search`` found for the question's vector; each entry
        scores the higher of its lexical and its dense similarity.
        """
        if not self._ids:
            return MemoryMatch()
        candidates, similarity = self._lexical(question)
        if dense is not None and len(dense[0]):
            candidates = np.concatenate([candidates, dense[0]])
            similarity = np.concatenate([similarity, dense[1]])
            candidates, inverse = np.unique(candidates, return_inverse=True)
            best = np.zeros(len(candidates), dtype=np.float32)
            np.maximum.at(best, inverse, similarity)
            similarity = best
        keep = similarity >= min_similarity
        candidates, similarity = candidates[keep], similarity[keep]
        if len(candidates) > limit:
            best_ones = np.argpartition(-similarity, limit - 1)[:limit]
            candidates, similarity = candidates[best_ones], similarity[best_ones]
        order = np.lexsort((candidates, -similarity))
        return MemoryMatch(
            tuple(
                MemoryHit(self._ids[i], round(min(1.0, float(s)), 4), self._tables[i])
                for i, s in zip(candidates[order], similarity[order], strict=True)
            )
        )

    def _lexical(self, question: str) -> tuple[np.ndarray, np.ndarray]:
        """The entries sharing a word with ``question`` and their cosine to it."""
        nothing = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        query = sorted({self._vocabulary[w] for w in words(question) if w in self._vocabulary})
        if not query:
            return nothing
        idf = self._idf()
        self._refresh_norms(idf)
        weights = idf[query] ** 2
        # The question's norm counts its words the memory never saw too: they are evidence against.
        unseen = sum(1 for w in set(words(question)) if w not in self._vocabulary)
        query_norm = math.sqrt(float(weights.sum()) + unseen * float(idf.max()) ** 2)
        candidates, sums = self._overlaps(query, weights)
        if not len(candidates):
            return nothing
        similarity = sums / (query_norm * np.maximum(self._norms[candidates], 1e-6))
        return candidates.astype(np.int64), similarity.astype(np.float32)

    def co_used(self, tables: Iterable[str]) -> dict[str, float]:
        """Tables used together with ``tables``: the share of each one's uses, best over ``tables``."""
        shares: dict[str, float] = {}
        for table in tables:
            together = self._co_used.get(table)
            if not together:
                continue
            total = max(together.values())
            for other, count in together.items():
                shares[other] = max(shares.get(other, 0.0), count / total)
        return shares
