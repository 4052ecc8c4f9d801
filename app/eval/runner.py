"""Routing every question through the real service: the app served on loopback, called over HTTP.

The app is ``create_app(settings)`` with its own lifespan (introspection included), served by
uvicorn on a free 127.0.0.1 port on this event loop; questions go to ``POST /route``
concurrently, at most ``concurrency`` in flight, with a progress bar on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from tqdm import tqdm  # type: ignore[import-untyped]

from app.main import create_app
from app.serving import serve_in_loop
from app.settings import Settings

__all__ = ["RouteJob", "RouteOutcome", "catalog_names", "route_all", "serving", "write_oracle"]

_TABLES_PAGE = 1000


@dataclass(frozen=True, slots=True)
class RouteJob:
    """One route request: the question id, the text sent, and where to route it."""

    id: str
    question: str
    source: str
    schemas: list[str] | None


@dataclass
class RouteOutcome:
    """What came back for one question (``status`` 0: no HTTP answer at all)."""

    id: str
    status: int
    tables: list[tuple[str, float, bool]] = field(default_factory=list)  # name, score, via_fk
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    extra_tokens: int = 0  # tokens of the extra votes for unsettled tables (in the two above)
    coverage: float | None = None
    cost_usd: float | None = None
    service_ms: float = 0.0
    wall_ms: float = 0.0
    partial: int = 0
    error: str | None = None


@contextlib.asynccontextmanager
async def serving(settings: Settings, store_url: str | None = None) -> AsyncIterator[str]:
    """The service for ``settings`` on a free loopback port, lifespan run; yields its base URL.

    Its own store is ``store_url``, by default a throwaway SQLite file: an evaluation's routes
    are not traffic to keep, and a snapshot stored by an earlier run must not be served.
    """
    with tempfile.TemporaryDirectory(prefix="tablerouter-eval-store-") as tmp:
        url = store_url or f"sqlite+aiosqlite:///{Path(tmp) / 'store.db'}"
        async with serve_in_loop(
            create_app(settings.model_copy(update={"database_url": SecretStr(url)}))
        ) as base_url:
            yield base_url


async def catalog_names(client: httpx.AsyncClient, source: str) -> set[str]:
    """Every table name of ``source``'s snapshot, as the service reports it."""
    names: set[str] = set()
    offset = 0
    while True:
        params = {"offset": offset, "limit": _TABLES_PAGE}
        response = await client.get(f"/sources/{source}/tables", params=params)
        response.raise_for_status()
        page = response.json()
        names.update(t["name"] for t in page["tables"])
        offset += _TABLES_PAGE
        if offset >= page["total"]:
            return names


def write_oracle(path: Path, gold: Mapping[str, Iterable[str]]) -> None:
    """The simulator's oracle file: one ``{"question", "gold_tables"}`` line per question text."""
    with path.open("w", encoding="utf-8") as out:
        for question, tables in gold.items():
            line = {"question": question, "gold_tables": sorted(tables)}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def _outcome(job: RouteJob, response: httpx.Response, wall_ms: float) -> RouteOutcome:
    if response.status_code != HTTPStatus.OK:
        try:
            detail = str(response.json().get("detail", ""))
        except ValueError:
            detail = response.text[:200]
        return RouteOutcome(job.id, response.status_code, wall_ms=wall_ms, error=detail)
    body: dict[str, Any] = response.json()
    stats = body["stats"]
    return RouteOutcome(
        id=job.id,
        status=response.status_code,
        tables=[(t["name"], float(t["score"]), bool(t["via_fk"])) for t in body["tables"]],
        lm_calls=int(stats["lm_calls"]),
        prompt_tokens=int(stats["prompt_tokens"]),
        completion_tokens=int(stats["completion_tokens"]),
        cached_prompt_tokens=int(stats.get("cached_prompt_tokens", 0)),
        extra_tokens=int(stats.get("extra_tokens", 0)),
        coverage=body.get("coverage"),
        cost_usd=None if stats.get("cost_usd") is None else float(stats["cost_usd"]),
        service_ms=float(stats["elapsed_ms"]),
        wall_ms=wall_ms,
        # The service has no partial flag yet; count it when it does.
        partial=int(bool(body.get("partial", 0))),
    )


async def _route_one(client: httpx.AsyncClient, job: RouteJob, top_k: int) -> RouteOutcome:
    payload: dict[str, Any] = {"question": job.question, "source": job.source, "top_k": top_k, "min_score": 0}
    if job.schemas is not None:
        payload["schemas"] = job.schemas
    started = time.perf_counter()
    for attempt in range(2):
        try:
            response = await client.post("/route", json=payload)
            break
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            # A kept-alive connection the server closed as it went idle fails the next request
            # at once; a route only reads, so sending it again on a new connection is safe.
            if attempt:
                return RouteOutcome(job.id, 0, wall_ms=_ms_since(started), error=type(exc).__name__)
        except httpx.HTTPError as exc:
            return RouteOutcome(job.id, 0, wall_ms=_ms_since(started), error=type(exc).__name__)
    return _outcome(job, response, _ms_since(started))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def route_all(
    client: httpx.AsyncClient,
    jobs: Sequence[RouteJob],
    *,
    top_k: int,
    concurrency: int,
    progress: bool = True,
) -> list[RouteOutcome]:
    """Route every job, at most ``concurrency`` at once; outcomes in job order."""
    gate = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(jobs), desc="routing", unit="q", disable=not progress, dynamic_ncols=True)

    async def one(job: RouteJob) -> RouteOutcome:
        async with gate:
            outcome = await _route_one(client, job, top_k)
        bar.update()
        return outcome

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(job)) for job in jobs]
    finally:
        bar.close()
    return [t.result() for t in tasks]
