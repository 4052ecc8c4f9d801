"""The route memory's vectors on their real parts: exact below the threshold, the HNSW graph
(usearch) above it, searched while vectors are added.

The vectors are clusters of five around random centres in 64 dimensions: a query near a centre
has five clear nearest entries (cosine about 0.98) and every other one far below (about 0.1),
so an approximate search that finds the same five does so for no lucky tie.
"""

from __future__ import annotations

import threading

import numpy as np

from app.routing.retrieval.memory_vectors import MemoryVectors

DIM, CLUSTERS, MEMBERS = 64, 1200, 5


def _unit(rows: np.ndarray) -> np.ndarray:
    unit: np.ndarray = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    return unit


def _clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = _unit(rng.standard_normal((CLUSTERS, DIM)))
    members = np.repeat(centres, MEMBERS, axis=0) + 0.02 * rng.standard_normal((CLUSTERS * MEMBERS, DIM))
    return centres, _unit(members)


def _add_in_batches(vectors: MemoryVectors, members: np.ndarray, first: int = 0, batch: int = 256) -> None:
    for start in range(first, len(members), batch):
        rows = members[start : start + batch]
        # Positions are not row numbers: entry 0 is never embedded, as when a batch failed.
        vectors.add([1 + start + i for i in range(len(rows))], rows)


def test_past_the_threshold_the_graph_finds_what_exact_search_finds() -> None:
    rng = np.random.default_rng(7)
    centres, members = _clusters(rng)
    vectors = MemoryVectors(exact_below=2000)
    _add_in_batches(vectors, members[:1500])
    assert vectors.wait_indexed(60)
    assert vectors.indexed == 0  # under the threshold: exact, no graph
    _add_in_batches(vectors, members, first=1500)
    assert vectors.wait_indexed(120)
    assert vectors.indexed == len(vectors) == CLUSTERS * MEMBERS
    queries = _unit(centres + 0.02 * rng.standard_normal(centres.shape))
    for cluster, query in enumerate(queries[::7]):
        positions, similarity = vectors.search(query, 5, 0.3, 0.2)
        exact_positions, exact_similarity = vectors.search_exact(query, 5, 0.3, 0.2)
        expected = {1 + 7 * cluster * MEMBERS + m for m in range(MEMBERS)}
        assert set(positions.tolist()) == set(exact_positions.tolist()) == expected
        assert sorted(similarity.tolist()) == sorted(exact_similarity.tolist())  # rescored exactly
    # A question embedded by another model (another size) finds nothing, as under the threshold.
    assert len(vectors.search(np.ones(DIM // 2, dtype=np.float32), 5, 0.3, 0.2)[0]) == 0
    # Nothing is near an unrelated vector: both searches find nothing over the floor.
    far = _unit(rng.standard_normal((1, DIM)))[0]
    assert len(vectors.search(far, 5, 0.3, 0.2)[0]) == len(vectors.search_exact(far, 5, 0.3, 0.2)[0]) == 0


def test_searches_while_vectors_are_added_and_indexed() -> None:
    rng = np.random.default_rng(11)
    centres, members = _clusters(rng)
    vectors = MemoryVectors(exact_below=500)
    failures: list[BaseException] = []
    stop = threading.Event()
    searched = [0, 0]

    def search(worker: int) -> None:
        try:
            while not stop.is_set():
                cluster = int(rng.integers(CLUSTERS))
                positions, similarity = vectors.search(centres[cluster], 5, 0.3, 0.2)
                added = len(vectors)  # read after: every hit is an entry added by then
                assert all(1 <= p <= added for p in positions.tolist())
                assert len(positions) == len(similarity) <= 5
                searched[worker] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=search, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    _add_in_batches(vectors, members, batch=64)  # the adder's side, while the graph is being built
    assert vectors.wait_indexed(120)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert min(searched) > 0
    assert vectors.indexed == len(vectors) == CLUSTERS * MEMBERS
    found, _ = vectors.search(centres[3], 5, 0.3, 0.2)
    assert set(found.tolist()) == {1 + 3 * MEMBERS + m for m in range(MEMBERS)}


def test_another_models_size_starts_over_and_leaves_the_graph() -> None:
    rng = np.random.default_rng(5)
    _, members = _clusters(rng)
    vectors = MemoryVectors(exact_below=1000)
    _add_in_batches(vectors, members[:2000])
    assert vectors.wait_indexed(60)
    assert vectors.indexed == 2000
    smaller = _unit(rng.standard_normal((10, 32)))
    vectors.add(list(range(10)), smaller)
    assert len(vectors) == 10
    assert vectors.indexed == 0  # the old graph is of the old model: not searched
    positions, _ = vectors.search(smaller[4], 1, 0.3, 0.2)
    assert positions.tolist() == [4]
    assert len(vectors.search(members[0], 5, 0.3, 0.2)[0]) == 0  # the old model's vector: nothing
