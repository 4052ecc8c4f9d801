"""The codec and the key of the shared route cache (the replica tests: test_shared_route_cache.py)."""

from __future__ import annotations

import zlib

from app.routing.merge import RankedTable
from app.routing.route_codec import decode_route, encode_route
from app.routing.route_key import route_key
from app.routing.service import RouteResult, RouteStats


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
