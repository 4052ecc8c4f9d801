"""The route log and feedback, end to end: the service, the LM simulator over a real socket, the store.

Runs once per store backend (a fresh PostgreSQL database, a SQLite file).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from pydantic import SecretStr

from app.cli import main
from app.eval.spider import load_questions
from app.harness.service import service_client
from app.harness.stores import STORE_BACKENDS, fresh_store_url, small_pg_warehouse
from app.routing.judging.versions import PROGRAM_VERSION
from app.settings import Settings, get_settings
from app.simulator.service import SimulatorConfig, running_simulator
from app.store.database import Store
from app.store.migrate import upgrade_async
from app.store.models import RouteLog

pytestmark = pytest.mark.asyncio(loop_scope="module")
N_CONCURRENT = 120
QUESTION = "total of orders per customer"


@dataclass
class World:
    store_url: str
    schema: str
    settings: Settings


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORE_BACKENDS)
async def world(
    request: pytest.FixtureRequest, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("store")
    config = SimulatorConfig(port=0, latency_ms="uniform:5:15")
    async with (
        fresh_store_url(request.param, pg_url, tmp) as store_url,
        small_pg_warehouse(pg_url) as schema,
        running_simulator(config) as sim_url,
    ):
        settings = Settings.model_validate(
            {
                "sources": {"wh": {"url": pg_url, "schemas": [schema]}},
                "database_url": store_url,
                "llm_model": "openai/tablerouter-sim",
                "llm_api_base": f"{sim_url}/v1",
                "llm_timeout": 10,
                "refresh_interval_s": 0,
                "cleanup_interval_s": 0,
            }
        )
        yield World(store_url, schema, settings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with service_client(world.settings) as c:
        yield c


async def _count(store_url: str, route_ids: list[str]) -> int:
    store = Store(store_url)
    try:
        async with store.begin() as session:
            query = sa.select(sa.func.count()).where(RouteLog.route_id.in_(route_ids))
            return int(await session.scalar(query) or 0)
    finally:
        await store.aclose()


async def test_every_concurrent_route_is_logged_and_shutdown_drains(world: World) -> None:
    async with service_client(world.settings) as own:
        questions = [f"{QUESTION} number {i}" for i in range(N_CONCURRENT)]
        responses = await asyncio.gather(*(own.post("/route", json={"question": q}) for q in questions))
        assert all(r.status_code == 200 for r in responses)
        route_ids = [r.json()["route_id"] for r in responses]
        assert len(set(route_ids)) == N_CONCURRENT
    # Counted after shutdown, with no reads in between: the writer drained its queue on the way out.
    assert await _count(world.store_url, route_ids) == N_CONCURRENT


async def test_a_route_reads_back_at_once(client: httpx.AsyncClient, world: World) -> None:
    routed = (await client.post("/route", json={"question": QUESTION, "schemas": [world.schema]})).json()
    logged = await client.get(f"/routes/{routed['route_id']}")
    assert logged.status_code == 200
    body = logged.json()
    assert body["question"] == QUESTION
    assert body["source"] == "wh"
    assert body["catalog_version"] == routed["catalog_version"]
    assert body["judge"] == "openai/tablerouter-sim"
    assert body["program_version"] == PROGRAM_VERSION
    assert body["schemas"] == [world.schema]
    assert body["tables"] == routed["tables"]
    assert body["stats"] == routed["stats"]
    assert body["feedback"] is None
    assert body["created_at"].endswith("Z")
    stats = (await client.get("/stats")).json()["route_log"]
    assert stats["failed"] == 0
    assert stats["dropped"] == 0


async def test_feedback_round_trip_and_export(
    client: httpx.AsyncClient, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed = (await client.post("/route", json={"question": QUESTION})).json()
    s = world.schema
    sql = (
        f"WITH big AS (SELECT * FROM {s}.Orders WHERE total > 100) "
        f"SELECT c.name, sum(b.total) FROM CUSTOMERS c JOIN big b ON b.customer_id = c.id GROUP BY c.name"
    )
    sent = await client.post(
        f"/routes/{routed['route_id']}/feedback", json={"used_tables": [f"{s}.order_lines"], "sql": sql}
    )
    assert sent.status_code == 201, sent.text
    expected = sorted(f"{s}.{t}" for t in ("customers", "order_lines", "orders"))
    assert sent.json()["used_tables"] == expected
    logged = (await client.get(f"/routes/{routed['route_id']}")).json()
    assert logged["feedback"]["used_tables"] == expected
    assert logged["feedback"]["sql"] == sql

    # Sent again, it replaces the first.
    again = await client.post(f"/routes/{routed['route_id']}/feedback", json={"used_tables": [f"{s}.orders"]})
    assert again.status_code == 201
    assert again.json()["used_tables"] == [f"{s}.orders"]

    out = tmp_path / "feedback.jsonl"
    monkeypatch.setenv("TABLEROUTER_DATABASE_URL", world.store_url)
    get_settings.cache_clear()
    try:
        assert await asyncio.to_thread(main, ["feedback", "export", "--out", str(out), "--source", "wh"]) == 0
    finally:
        get_settings.cache_clear()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [line for line in lines if line["id"] == routed["route_id"]]
    assert mine == [
        {
            "id": routed["route_id"],
            "db_id": "wh",
            "question": QUESTION,
            "gold_tables": [f"{s}.orders"],
            "catalog_version": routed["catalog_version"],
        }
    ]
    # The evaluation harness reads the export as a question file.
    (question,) = [q for q in load_questions(out) if q.id == routed["route_id"]]
    assert (question.db_id, question.question, question.gold) == ("wh", QUESTION, (f"{s}.orders",))


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"used_tables": ["nope", "orders", "other.customers"]}, 422, "nope, other.customers"),
        ({"sql": "SELECT * FROM invoices JOIN orders USING (id)"}, 422, "invoices"),
        ({"sql": "SELECT FROM WHERE"}, 422, "does not parse"),
        ({"used_tables": []}, 422, "names no table"),
        ({}, 422, "names no table"),
        ({"used_tables": "orders"}, 422, "used_tables"),
        ({"used_tables": [""]}, 422, "used_tables"),
        ({"used_tables": ["orders"], "surprise": 1}, 422, "surprise"),
        ({"sql": ""}, 422, "sql"),
    ],
)
async def test_bad_feedback_is_a_problem(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, needle: str
) -> None:
    routed = (await client.post("/route", json={"question": QUESTION})).json()
    response = await client.post(f"/routes/{routed['route_id']}/feedback", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert needle in response.json()["detail"]
    if "nope" in needle:
        assert response.json()["unknown_tables"] == ["nope", "other.customers"]


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get(f"/routes/{uuid.uuid4().hex}"),
        await client.post(f"/routes/{uuid.uuid4().hex}/feedback", json={"used_tables": ["orders"]}),
        await client.get(f"/routes/{'x' * 300}"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_failed_write_is_counted_never_a_failed_route(world: World, tmp_path: Path) -> None:
    store_url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade_async(store_url)
    settings = world.settings.model_copy(update={"database_url": SecretStr(store_url)})
    async with service_client(settings) as own:
        store = Store(store_url)
        async with store.begin() as session:
            await session.execute(sa.text("ALTER TABLE route_log RENAME TO route_log_gone"))
        await store.aclose()
        routed = await own.post("/route", json={"question": QUESTION})
        assert routed.status_code == 200
        for _ in range(200):
            stats = (await own.get("/stats")).json()["route_log"]
            if stats["queued"] == 0:
                break
            await asyncio.sleep(0.05)
        assert stats["failed"] == 1
        assert stats["written"] == 0
        # The store being broken is the service's trouble, said as such: 503, not 500 or 404.
        lost = await own.get(f"/routes/{routed.json()['route_id']}")
        assert lost.status_code == 503
        assert lost.headers["retry-after"] == "5"
        assert lost.json()["type"].endswith("/store-unavailable")
