"""The parts of the shared route cache in-process, on the local Redis: codec, key, size cap, bounded wait.

The replica tests (three ``tablerouter serve`` processes) are in test_shared_route_cache.py.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator

import pytest_asyncio

from app.redis_link import RedisLink
from app.routing.caching.route_codec import decode_route, encode_route
from app.routing.caching.route_key import route_key
from app.routing.caching.shared_route_cache import SharedRouteCache
from app.routing.ranking.merge import RankedTable
from app.routing.result import RouteResult, RouteStats


def _result(reason: str) -> RouteResult:
    """An answer with every kind of field the codec carries."""
    stats = RouteStats(40, 8, 8, 0, 0, 3000, 80, 512.5, shortlisted=40, cache="miss", deadline_ms=30000)
    tables = [
        RankedTable("sales.orders", 0.93, 1, 1, reason),
        RankedTable("sales.items", 0.6, 1, 1, "", via_fk=True),
    ]
    return RouteResult("r1", "wh", "v1", "openai/sim", tables, stats)


def test_an_answer_survives_the_codec_and_another_format_is_a_miss() -> None:
    result = _result("orders placed by a customer")
    decoded = decode_route(encode_route(result))
    assert decoded is not None
    assert decoded.tables == result.tables
    assert decoded.stats == result.stats
    assert decoded.route_id == ""
    assert decode_route(b"not zlib") is None
    assert decode_route(zlib.compress(b"{}")) is None
    assert decode_route(zlib.compress(b'{"v": 99}')) is None


def _digest(
    question: str = "Orders  by Customer",
    catalog_version: str = "v1",
    top_k: int = 5,
    schemas: tuple[str, ...] | None = ("b", "a"),
) -> str:
    key = route_key(
        question,
        source="wh",
        catalog_version=catalog_version,
        program_version="p1",
        top_k=top_k,
        min_score=0.0,
        schemas=schemas,
    )
    return key.digest()


def test_the_key_is_the_same_for_the_same_route_only() -> None:
    assert _digest() == _digest("orders by customer", schemas=("a", "b", "a"))
    assert _digest() != _digest(catalog_version="v2")
    assert _digest() != _digest(top_k=6)
    assert _digest() != _digest(schemas=None)
    assert _digest() != _digest("orders by supplier")


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest_asyncio.fixture
async def link() -> AsyncIterator[RedisLink]:
    """A link under a fresh prefix; the prefix's keys are deleted afterwards."""
    prefix = f"tr-test-{uuid.uuid4().hex[:10]}"
    link = RedisLink(REDIS_URL, prefix)
    await link.start()
    yield link
    keys = [k async for k in link.client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await link.client.delete(*keys)
    await link.aclose()


class Counted:
    """A computation that counts its runs and can be held until released."""

    def __init__(self, value: bytes) -> None:
        self.value = value
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> bytes:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        return self.value


def _cache(link: RedisLink, max_bytes: int = 4096) -> SharedRouteCache:
    return SharedRouteCache(link, ttl_seconds=60, lock_seconds=5, wait_seconds=5, max_bytes=max_bytes)


async def _get(cache: SharedRouteCache, compute: Counted, wait: float = 5.0) -> tuple[bytes, bool]:
    return await cache.get_or_compute("d1", compute, lambda b: b, lambda b: b, wait)


async def test_a_small_answer_is_shared_and_a_big_one_is_not(link: RedisLink) -> None:
    small, big = _cache(link), _cache(link, max_bytes=256)
    compute = Counted(b"tables")
    assert await _get(small, compute) == (b"tables", False)
    assert await _get(small, compute) == (b"tables", True)
    assert compute.runs == 1
    link.prefix += "-big"
    too_big = Counted(b"x" * 1000)
    assert await _get(big, too_big) == (b"x" * 1000, False)
    assert await _get(big, too_big) == (b"x" * 1000, False)
    assert too_big.runs == 2
    await small.aclose()
    await big.aclose()


async def test_a_waiter_computes_itself_when_its_wait_is_up(link: RedisLink) -> None:
    first, second = _cache(link), _cache(link)
    held = Counted(b"slow")
    held.release.clear()
    holder = asyncio.create_task(_get(first, held))
    await held.started.wait()  # the holder has the lock once it computes
    mine = Counted(b"mine")
    assert await _get(second, mine, wait=0.3) == (b"mine", False)
    held.release.set()
    assert await holder == (b"slow", False)
    # The holder's answer is the one shared; the impatient waiter's was not stored.
    assert await _get(second, Counted(b"other")) == (b"slow", True)
    await first.aclose()
    await second.aclose()
