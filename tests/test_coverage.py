"""A failed chunk is retried only when some of its tables cannot get a verdict from another chunk."""

from __future__ import annotations

import asyncio

import pytest

from app.routing.judging.coverage import Coverage
from app.routing.preparation.chunks import Chunk

pytestmark = pytest.mark.asyncio


def _chunks(*names: tuple[str, ...]) -> list[Chunk]:
    return [Chunk(i, n, " ".join(n), 10) for i, n in enumerate(names)]


async def test_a_chunk_whose_tables_were_all_judged_elsewhere_is_not_retried() -> None:
    coverage = Coverage(_chunks(("a", "b"), ("a", "c"), ("b", "c")))
    coverage.settle(1, answered=True)
    coverage.settle(2, answered=True)
    assert await coverage.needed(0) is False


async def test_a_table_in_no_other_chunk_needs_the_retry() -> None:
    coverage = Coverage(_chunks(("a", "b"), ("b",)))
    coverage.settle(1, answered=True)
    assert await coverage.needed(0) is True  # "a" is in chunk 0 only (VOTES=1 behaves like this)


async def test_waits_for_a_running_chunk_then_gives_up_when_it_answers() -> None:
    coverage = Coverage(_chunks(("a",), ("a",)))
    decision = asyncio.create_task(coverage.needed(0))
    await asyncio.sleep(0.01)
    assert not decision.done()  # chunk 1 may still judge "a"
    coverage.settle(1, answered=True)
    assert await asyncio.wait_for(decision, 1) is False


async def test_waits_for_a_running_chunk_then_retries_when_it_fails() -> None:
    coverage = Coverage(_chunks(("a",), ("a",)))
    decision = asyncio.create_task(coverage.needed(0))
    await asyncio.sleep(0.01)
    coverage.settle(1, answered=False)
    assert await asyncio.wait_for(decision, 1) is True


async def test_two_failed_chunks_sharing_a_table_retry_one_not_both_and_never_deadlock() -> None:
    coverage = Coverage(_chunks(("a", "x"), ("a", "y"), ("x", "y")))
    coverage.settle(2, answered=True)  # "x" and "y" are judged; "a" only by chunks 0 and 1
    first = asyncio.create_task(coverage.needed(0))
    await asyncio.sleep(0.01)
    assert not first.done()  # chunk 1 is still running and may judge "a"
    # Chunk 1 fails too: the waiting chunk 0 does not count as one that may still answer.
    assert await asyncio.wait_for(coverage.needed(1), 1) is True
    await asyncio.sleep(0.01)
    assert not first.done()  # chunk 1 is retrying: it may judge "a" yet
    coverage.settle(1, answered=True)
    assert await asyncio.wait_for(first, 1) is False


async def test_when_the_retry_fails_for_good_the_waiting_chunk_retries() -> None:
    coverage = Coverage(_chunks(("a",), ("a",)))
    first = asyncio.create_task(coverage.needed(0))
    await asyncio.sleep(0.01)
    assert await coverage.needed(1) is True
    coverage.settle(1, answered=False)  # its retry was refused or failed
    assert await asyncio.wait_for(first, 1) is True
