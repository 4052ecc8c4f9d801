"""The embeddings of remembered questions, searchable by cosine (the route memory's dense side).

Vectors arrive after their entries (embedded in batches off the hot path), so they are kept
by the entry's position in the memory index, in a buffer that grows by doubling. A search
reads one snapshot ``(buffer, positions, rows)``, published at once, and writes land beyond
``rows`` (or in a new buffer), so a search may run in a worker thread while the event loop
adds vectors.

Below ``exact_below`` vectors a search reads every one (exact, and fast at that size). From
there on an HNSW graph (``usearch``) answers instead: a worker thread of its own inserts the
vectors the graph lacks, in chunks, so ``add`` stays a copy on the event loop; a search asks
the graph for candidates, adds the rows it does not hold yet, and scores them all exactly.

A dense cosine is put on the lexical cosine's scale before the two are compared:
``(cosine - floor) / (1 - floor)``, where ``floor`` is the cosine that unrelated questions
typically get from the embeddings model (about 0 for a bag of words, 0.1-0.3 for neural models).
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np
from usearch.index import Index

__all__ = ["EXACT_BELOW", "DenseHits", "MemoryVectors"]

DenseHits = tuple[np.ndarray, np.ndarray]  # entry positions, rescaled similarity (both per hit)
EXACT_BELOW = 20_000  # under this many vectors, reading them all is exact and within the goal
_FIRST_CAPACITY = 256
# A search waits for at most one chunk's insertion (the graph's lock): 1,400 to 2,500 vectors
# of 256 dimensions a second go in, so 4 cost a search at most about 3 ms.
_CHUNK = 4
# Candidates asked of the graph per hit wanted: rescored exactly, the spare ones buy recall.
_CANDIDATES_PER_HIT = 4
_MIN_CANDIDATES = 32
# The graph's links per node and breadth of insertion and search, measured at 100,000 vectors
# of the simulator (bench.memory prints recall and lookup time against exact search).
_CONNECTIVITY, _EXPANSION_ADD, _EXPANSION_SEARCH = 16, 64, 96


class _Snapshot(NamedTuple):
    buffer: np.ndarray  # rows x dimension, unit float32 rows
    positions: np.ndarray  # entry position of each row
    rows: int
    generation: int  # bumped when the dimension changes: a graph of another generation is stale


class _Graph:
    """An HNSW graph over rows ``[0, count)`` of one generation's buffer; keys are row numbers."""

    def __init__(self, ndim: int, generation: int) -> None:
        # The binding promises nothing for an insertion concurrent with a search from another
        # Python thread (an insertion may grow the graph's storage): one lock serialises them.
        self.lock = threading.Lock()
        self.index = Index(
            ndim=ndim,
            metric="cos",
            dtype="f16",  # half the memory and time of f32; candidates are rescored from float32
            connectivity=_CONNECTIVITY,
            expansion_add=_EXPANSION_ADD,
            expansion_search=_EXPANSION_SEARCH,
        )
        self.ndim = ndim
        self.generation = generation
        self.count = 0


class MemoryVectors:
    """Unit vectors of some of a memory index's entries, by entry position."""

    def __init__(self, exact_below: int = EXACT_BELOW) -> None:
        self._exact_below = exact_below
        self._worker_lock = threading.Lock()  # guards starting and retiring the indexing worker
        self._worker: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._generation = 0
        self._reset()

    def _reset(self) -> None:
        self._generation += 1
        empty = np.zeros((0, 0), dtype=np.float32)
        self._snapshot = _Snapshot(empty, np.zeros(0, dtype=np.int64), 0, self._generation)
        self._graph: _Graph | None = None
        self._has: set[int] = set()

    def __len__(self) -> int:
        return self._snapshot.rows

    @property
    def indexed(self) -> int:
        """How many vectors the approximate index holds (0 while searches are exact)."""
        graph = self._graph
        return graph.count if graph is not None and graph.generation == self._generation else 0

    def has(self, position: int) -> bool:
        """Whether the entry at ``position`` has a vector."""
        return position in self._has

    def add(self, positions: list[int], vectors: np.ndarray) -> None:
        """Keep ``vectors`` (unit rows) for the entries at ``positions``; another model's size starts over."""
        if not positions:
            return
        old = self._snapshot
        if old.rows and vectors.shape[1] != old.buffer.shape[1]:
            self._reset()  # the embeddings model changed: old vectors are not comparable
            old = self._snapshot
        needed = old.rows + len(positions)
        if needed > len(old.buffer) or vectors.shape[1] != old.buffer.shape[1]:
            capacity = max(_FIRST_CAPACITY, 2 * needed)
            buffer = np.zeros((capacity, vectors.shape[1]), dtype=np.float32)
            positions_buffer = np.zeros(capacity, dtype=np.int64)
            if old.rows:
                buffer[: old.rows] = old.buffer[: old.rows]
                positions_buffer[: old.rows] = old.positions[: old.rows]
        else:
            buffer, positions_buffer = old.buffer, old.positions
        buffer[old.rows : needed] = vectors
        positions_buffer[old.rows : needed] = positions
        # Published last, in one assignment: a search never sees a half-written row.
        self._snapshot = _Snapshot(buffer, positions_buffer, needed, old.generation)
        self._has.update(positions)
        if needed >= self._exact_below:
            if self._graph is None:
                self._graph = _Graph(vectors.shape[1], old.generation)
            self._start_indexing()

    def wait_indexed(self, timeout: float | None = None) -> bool:
        """Wait until the approximate index holds every vector (or ``timeout`` s); whether it does."""
        return self._idle.wait(timeout)

    def _start_indexing(self) -> None:
        with self._worker_lock:
            if self._worker is None:
                self._idle.clear()
                self._worker = threading.Thread(
                    target=self._index_pending, name="memory-vectors", daemon=True
                )
                self._worker.start()

    def _index_pending(self) -> None:
        """Insert the rows the graph lacks, a chunk at a time, until none is left (the worker's loop)."""
        try:
            self._insert_until_done()
        except BaseException:
            with self._worker_lock:  # searches stay correct (the rows it lacks are read exactly)
                self._worker = None
                self._idle.set()
            raise

    def _insert_until_done(self) -> None:
        while True:
            graph, snapshot = self._graph, self._snapshot
            pending = (
                graph is not None and graph.generation == snapshot.generation and graph.count < snapshot.rows
            )
            if graph is not None and pending:
                with graph.lock:
                    start = graph.count
                    end = min(snapshot.rows, start + _CHUNK)
                    # One thread: the other core serves routes (the binding frees the GIL meanwhile).
                    keys = np.arange(start, end, dtype=np.uint64)
                    graph.index.add(keys, snapshot.buffer[start:end], threads=1)
                    graph.count = end
                continue
            with self._worker_lock:  # checked again under the lock that add's start takes
                graph, snapshot = self._graph, self._snapshot
                if graph is None or graph.generation != snapshot.generation or graph.count >= snapshot.rows:
                    self._worker = None
                    self._idle.set()
                    return

    def search(self, vector: np.ndarray, limit: int, min_similarity: float, floor: float) -> DenseHits:
        """The ``limit`` entries closest to ``vector``, of rescaled cosine at least ``min_similarity``.

        Exact below ``exact_below`` vectors; approximate above (the graph's candidates and the
        rows it lacks yet, scored exactly).
        """
        graph = self._graph
        candidates: np.ndarray | None = None
        current = graph is not None and graph.generation == self._generation and graph.ndim == len(vector)
        if graph is not None and current and graph.count:
            wanted = max(_MIN_CANDIDATES, _CANDIDATES_PER_HIT * limit)
            with graph.lock:
                found = graph.index.search(vector.astype(np.float32), wanted, threads=1)
                indexed = graph.count
            candidates = np.asarray(found.keys, dtype=np.int64)
        # Read after the graph: rows only grow within a generation, so ``indexed <= rows``.
        snapshot = self._snapshot
        if snapshot.rows == 0 or vector.shape[0] != snapshot.buffer.shape[1]:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if candidates is None or graph is None or graph.generation != snapshot.generation:
            return self.search_exact(vector, limit, min_similarity, floor)
        query = vector.astype(np.float32)
        # The rows not in the graph yet (none but a few once it is built) are read as one slice.
        cosine = np.concatenate(
            [snapshot.buffer[candidates] @ query, snapshot.buffer[indexed : snapshot.rows] @ query]
        )
        positions = np.concatenate(
            [snapshot.positions[candidates], snapshot.positions[indexed : snapshot.rows]]
        )
        return _best(positions, cosine, limit, min_similarity, floor)

    def search_exact(self, vector: np.ndarray, limit: int, min_similarity: float, floor: float) -> DenseHits:
        """As ``search``, reading every vector whatever their number (what the index is measured against)."""
        snapshot = self._snapshot
        if snapshot.rows == 0 or vector.shape[0] != snapshot.buffer.shape[1]:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        cosine = snapshot.buffer[: snapshot.rows] @ vector.astype(np.float32)
        return _best(snapshot.positions[: snapshot.rows], cosine, limit, min_similarity, floor)


def _best(
    positions: np.ndarray, cosine: np.ndarray, limit: int, min_similarity: float, floor: float
) -> DenseHits:
    """The ``limit`` best ``positions`` by rescaled ``cosine`` (one each), at least ``min_similarity``."""
    similarity = (cosine - floor) / max(1.0 - floor, 1e-6)
    keep = np.flatnonzero(similarity >= min_similarity)
    if len(keep) > limit:
        keep = keep[np.argpartition(-similarity[keep], limit - 1)[:limit]]
    return positions[keep], np.minimum(similarity[keep], 1.0).astype(np.float32)
