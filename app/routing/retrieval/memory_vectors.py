"""The embeddings of remembered questions, searchable by cosine (the route memory's dense side).

Vectors arrive after their entries (embedded in batches off the hot path), so they are kept
by the entry's position in the memory index, in a buffer that grows by doubling. A search
reads one ``(buffer, rows)`` snapshot and writes land beyond ``rows`` (or in a new buffer), so
a search may run in a worker thread while the event loop adds vectors.

A dense cosine is put on the lexical cosine's scale before the two are compared:
``(cosine - floor) / (1 - floor)``, where ``floor`` is the cosine that unrelated questions
typically get from the embeddings model (about 0 for a bag of words, 0.1-0.3 for neural models).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DenseHits", "MemoryVectors"]

DenseHits = tuple[np.ndarray, np.ndarray]  # entry positions, rescaled similarity (both per hit)
_FIRST_CAPACITY = 256


class MemoryVectors:
    """Unit vectors of some of a memory index's entries, by entry position."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._buffer = np.zeros((0, 0), dtype=np.float32)
        self._positions = np.zeros(0, dtype=np.int64)
        self._rows = 0
        self._has: set[int] = set()

    def __len__(self) -> int:
        return self._rows

    def has(self, position: int) -> bool:
        """Whether the entry at ``position`` has a vector."""
        return position in self._has

    def add(self, positions: list[int], vectors: np.ndarray) -> None:
        """Keep ``vectors`` (unit rows) for the entries at ``positions``; another model's size starts over."""
        if not positions:
            return
        if self._rows and vectors.shape[1] != self._buffer.shape[1]:
            self._reset()  # the embeddings model changed: old vectors are not comparable
        needed = self._rows + len(positions)
        if needed > len(self._buffer) or vectors.shape[1] != self._buffer.shape[1]:
            capacity = max(_FIRST_CAPACITY, 2 * needed)
            buffer = np.zeros((capacity, vectors.shape[1]), dtype=np.float32)
            positions_buffer = np.zeros(capacity, dtype=np.int64)
            if self._rows:
                buffer[: self._rows] = self._buffer[: self._rows]
                positions_buffer[: self._rows] = self._positions[: self._rows]
        else:
            buffer, positions_buffer = self._buffer, self._positions
        buffer[self._rows : needed] = vectors
        positions_buffer[self._rows : needed] = positions
        # Rows published last: a search that read the old count never sees a half-written row.
        self._buffer, self._positions, self._rows = buffer, positions_buffer, needed
        self._has.update(positions)

    def search(self, vector: np.ndarray, limit: int, min_similarity: float, floor: float) -> DenseHits:
        """The ``limit`` entries closest to ``vector``, of rescaled cosine at least ``min_similarity``."""
        buffer, positions, rows = self._buffer, self._positions, self._rows
        if rows == 0 or vector.shape[0] != buffer.shape[1]:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        cosine = buffer[:rows] @ vector.astype(np.float32)
        similarity = (cosine - floor) / max(1.0 - floor, 1e-6)
        keep = np.flatnonzero(similarity >= min_similarity)
        if len(keep) > limit:
            keep = keep[np.argpartition(-similarity[keep], limit - 1)[:limit]]
        return positions[keep], np.minimum(similarity[keep], 1.0).astype(np.float32)
