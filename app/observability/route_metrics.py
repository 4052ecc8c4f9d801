"""One route's id and metrics: ``with observed_route() as route:`` around the routing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from app.observability.logs import ROUTE_ID
from app.observability.metrics import ROUTE_LATENCY, ROUTES


@dataclass
class ObservedRoute:
    """The id of the route being served and the outcome it will be counted under."""

    route_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    outcome: str = "rejected"


@contextmanager
def observed_route() -> Iterator[ObservedRoute]:
    """Set the route id for the logs of this route and count it when it ends.

    The outcome stays ``rejected`` unless the body sets it (``ok``, ``partial``, ``degraded``,
    ``queue_full``), so a bad request or an error is counted too.
    """
    route = ObservedRoute()
    token = ROUTE_ID.set(route.route_id)
    started = time.perf_counter()
    try:
        yield route
    finally:
        ROUTE_ID.reset(token)
        ROUTES.labels(route.outcome).inc()
        ROUTE_LATENCY.observe(time.perf_counter() - started)
