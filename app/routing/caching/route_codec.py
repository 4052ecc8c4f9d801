"""A route's answer as a small compressed blob, to share it between replicas through Redis.

The blob names its format version; one it cannot read (another release's) is a miss, never
an error. The route id is left out: each request answers under its own.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from typing import Any

from app.routing.ranking.merge import RankedTable
from app.routing.result import RouteResult, RouteStats

__all__ = ["CODEC_VERSION", "decode_route", "encode_route"]

# 2: answers carry 'unsettled', 'coverage' and the extra votes' counters.
CODEC_VERSION = 2


def encode_route(result: RouteResult) -> bytes:
    """``result`` as compressed JSON."""
    body = dataclasses.asdict(result)
    del body["route_id"]
    body["v"] = CODEC_VERSION
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode(), 6)


def decode_route(blob: bytes) -> RouteResult | None:
    """The answer in ``blob``, or None when it is not one this release can read."""
    try:
        body: dict[str, Any] = json.loads(zlib.decompress(blob))
        if body.pop("v", None) != CODEC_VERSION:
            return None
        tables = [RankedTable(**t) for t in body.pop("tables")]
        stats = RouteStats(**body.pop("stats"))
        body["mined_joins"] = [tuple(j) for j in body.get("mined_joins", [])]
        return RouteResult(route_id="", tables=tables, stats=stats, **body)
    except (zlib.error, ValueError, TypeError, KeyError):
        return None
