"""One route's metrics, and its id in the logs: ``with observed_route(route_id) as route:`` around it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.observability.logs import ROUTE_ID
from app.observability.metrics import ROUTE_LATENCY, ROUTES


@dataclass
class ObservedRoute:
    """The id of the route being served and the outcome it will be counted under."""

    route_id: str
    outcome: str = "rejected"


@contextmanager
def observed_route(route_id: str) -> Iterator[ObservedRoute]:
    """Put ``route_id`` on the log lines of this route and count the route when it ends.

    The outcome stays ``rejected`` unless the body sets it (``ok``, ``partial``, ``degraded``,
    ``queue_full``), so a bad request or an error is counted too.
    """
    route = ObservedRoute(route_id)
    token = ROUTE_ID.set(route.route_id)
    started = time.perf_counter()
    try:
        yield route
    finally:
        ROUTE_ID.reset(token)
        ROUTES.labels(route.outcome).inc()
        ROUTE_LATENCY.observe(time.perf_counter() - started)


def count_rejected_route() -> None:
    """Count a route refused before it started (its request named what the catalog lacks)."""
    ROUTES.labels("rejected").inc()
