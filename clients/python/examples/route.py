"""Drives a running service through the installed ``tablerouter_client`` package and asserts the
answers: a route, the sources and a page of tables, and typed problems (404, 422, a batch with
one failing request). Run by tests/test_installable_clients.py from a fresh virtualenv.

Usage: python route.py BASE_URL
"""

from __future__ import annotations

import sys

from tablerouter_client import Client
from tablerouter_client.api.routing import route, route_batch
from tablerouter_client.api.sources import list_sources, list_tables
from tablerouter_client.models import (
    JudgeKind,
    Problem,
    ProblemType,
    RouteBatchRequest,
    RoutedTable,
    RouteRequest,
    RouteResponse,
    TableKind,
    TableList,
)

QUESTION = "Which customers placed the most orders?"


def main(base_url: str) -> None:
    # Every status the service answers must be declared, or the client raises.
    with Client(base_url=base_url, raise_on_unexpected_status=True, timeout=60) as client:
        answer = route.sync(client=client, body=RouteRequest(question=QUESTION, top_k=5))
        assert isinstance(answer, RouteResponse), answer
        assert answer.judge_kind == JudgeKind.LEXICAL
        assert answer.source == "demo"
        assert 0 < len(answer.tables) <= 5
        assert all(isinstance(t, RoutedTable) and 0 <= t.score <= 1 for t in answer.tables)
        assert answer.stats.lm_calls == 0

        sources = list_sources.sync(client=client)
        assert sources is not None
        assert not isinstance(sources, Problem), sources
        assert [s.name for s in sources.sources] == ["demo"]
        assert sources.sources[0].tables > 50
        page = list_tables.sync("demo", client=client, limit=5)
        assert isinstance(page, TableList), page
        assert len(page.tables) == 5
        assert {t.kind for t in page.tables} <= set(TableKind)

        missing = route.sync(client=client, body=RouteRequest(question=QUESTION, source="nope"))
        assert isinstance(missing, Problem), missing
        assert missing.type_ == ProblemType.NOT_FOUND
        assert missing.status == 404
        invalid = route.sync_detailed(client=client, body=RouteRequest(question=QUESTION, top_k=0))
        assert invalid.status_code == 422
        assert isinstance(invalid.parsed, Problem), invalid.parsed
        assert invalid.parsed.type_ == ProblemType.VALIDATION
        assert [p.name for p in invalid.parsed.invalid_params] == ["body.top_k"]

        batch = route_batch.sync(
            client=client,
            body=RouteBatchRequest(
                requests=[RouteRequest(question=QUESTION), RouteRequest(question="x", source="nope")]
            ),
        )
        assert batch is not None
        assert not isinstance(batch, Problem), batch
        assert isinstance(batch.results[0].result, RouteResponse)
        assert batch.results[0].error is None
        assert batch.results[1].result is None
        assert batch.results[1].error.type_ == ProblemType.NOT_FOUND
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
