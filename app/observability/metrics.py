"""Every Prometheus metric of the service, defined in one place and exposed at ``/metrics``.

Metrics are process-wide by nature (one process is one scrape target), so they live in the
default registry and any module may import and update them. Names and labels are a contract
with dashboards; add, never rename.

- ``tablerouter_routes_total{outcome}``: routes answered; ``ok``, ``partial`` (some chunks had
  no verdict by the deadline), ``degraded`` (the lexical judge answered for the LM),
  ``queue_full`` (429), ``rejected`` (bad request or error).
- ``tablerouter_route_duration_seconds``: histogram of a route's wall time.
- ``tablerouter_lm_calls_total{outcome}``: LM calls; ``ok``, ``unparseable``, ``timeout``, ``error``.
- ``tablerouter_lm_retries_total{reason}``: LM calls made again after a failure.
- ``tablerouter_lm_hedges_total{outcome}``: hedged (duplicate) LM calls sent (``sent``).
- ``tablerouter_lm_tokens_total{kind}``: tokens the LM reported; ``prompt``, ``completion``,
  ``cached_prompt`` (part of ``prompt``: served from the provider's prefix cache).
- ``tablerouter_route_tokens_total{source,key,kind}``: LM tokens answered routes spent, per source
  and API key (``anonymous`` with auth off); ``prompt``, ``cached_prompt`` (part of ``prompt``,
  served from the provider's prefix cache), ``completion``.
- ``tablerouter_route_cost_usd_total{source,key}``: dollars those tokens cost at the configured
  prices (routes whose LM has no known price add nothing).
- ``tablerouter_route_cache_total{result}``: route cache look-ups; ``hit``, ``miss``, ``shared``
  (joined a computation already running: single-flight), ``remote_hit`` (answered by the
  shared cache in Redis: another replica computed it).
- ``tablerouter_limiter_wait_seconds``: histogram of the time an LM call waited for its slot
  and rate permits.
- ``tablerouter_limiter_waiting`` / ``tablerouter_lm_in_flight``: gauges of LM calls waiting
  for a slot / holding one in this process.
- ``tablerouter_shared_limits``: 1 while the LM limits are held in Redis, 0 on the local
  fallback and without Redis.
- ``tablerouter_lease_lost_total``: Redis leases that expired while their call still ran.
- ``tablerouter_store_up``: 1 while the service's own store answers and is migrated, 0 while it
  is degraded (docs/store.md).
- ``tablerouter_route_log_rows_total{outcome}``: route-log rows; ``written`` (replayed ones
  included), ``spilled`` (to the local spill file while the store could not take them),
  ``replayed`` (read back from a spill file and written), ``failed`` (refused by the store one
  by one), ``dropped`` (neither queue nor spill file had room).
- ``tablerouter_route_log_retries_total``: route-log writes tried again while the store was down.
- ``tablerouter_stale_keys_total``: requests let in on a key verified before a store outage.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "HEDGES",
    "LEASES_LOST",
    "LIMITER_WAIT",
    "LIMITER_WAITING",
    "LM_CALLS",
    "LM_IN_FLIGHT",
    "LM_RETRIES",
    "LM_TOKENS",
    "ROUTES",
    "ROUTE_CACHE",
    "ROUTE_COST",
    "ROUTE_LATENCY",
    "ROUTE_LOG_RETRIES",
    "ROUTE_LOG_ROWS",
    "ROUTE_TOKENS",
    "SHARED_LIMITS",
    "STALE_KEYS",
    "STORE_UP",
]

# Routes take from a few milliseconds (lexical, cached) to the LM timeout.
_ROUTE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

ROUTES = Counter("tablerouter_routes", "Routes answered, by outcome", ["outcome"])
ROUTE_LATENCY = Histogram(
    "tablerouter_route_duration_seconds", "Wall time of a route", buckets=_ROUTE_BUCKETS
)
LM_CALLS = Counter("tablerouter_lm_calls", "LM calls, by outcome", ["outcome"])
LM_RETRIES = Counter("tablerouter_lm_retries", "LM calls made again after a failure", ["reason"])
LM_RETRIES_SKIPPED = Counter(
    "tablerouter_lm_retries_skipped", "Failed chunks not asked again: other chunks judged all their tables"
)
HEDGES = Counter("tablerouter_lm_hedges", "Hedged LM calls", ["outcome"])
LM_TOKENS = Counter("tablerouter_lm_tokens", "Tokens reported by the LM", ["kind"])
ROUTE_TOKENS = Counter(
    "tablerouter_route_tokens",
    "LM tokens spent by routes, by source, key and kind",
    ["source", "key", "kind"],
)
ROUTE_COST = Counter("tablerouter_route_cost_usd", "Dollars spent on LM calls by routes", ["source", "key"])
ROUTE_CACHE = Counter("tablerouter_route_cache", "Route cache look-ups", ["result"])
LIMITER_WAIT = Histogram(
    "tablerouter_limiter_wait_seconds", "Time an LM call waited for its slot", buckets=_WAIT_BUCKETS
)
LIMITER_WAITING = Gauge("tablerouter_limiter_waiting", "LM calls waiting for a slot")
LM_IN_FLIGHT = Gauge("tablerouter_lm_in_flight", "LM calls holding a slot")
SHARED_LIMITS = Gauge("tablerouter_shared_limits", "1 while the LM limits are held in Redis")
LEASES_LOST = Counter("tablerouter_lease_lost", "Redis leases that expired while their call ran")
STORE_UP = Gauge("tablerouter_store_up", "1 while the service's own store answers and is migrated")
ROUTE_LOG_ROWS = Counter("tablerouter_route_log_rows", "Route-log rows, by outcome", ["outcome"])
ROUTE_LOG_RETRIES = Counter("tablerouter_route_log_retries", "Route-log writes tried again, store down")
STALE_KEYS = Counter("tablerouter_stale_keys", "Requests let in on a key verified before a store outage")
