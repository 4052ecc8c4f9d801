"""Catalog snapshots in the store: versioning, serving a stored snapshot, retention.

Runs once per store backend (a fresh PostgreSQL database, a SQLite file); the warehouse is
a small PostgreSQL schema per test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.model import Catalog, Column, Table
from app.harness.service import service_client
from app.harness.stores import STORE_BACKENDS, fresh_store_url, small_pg_warehouse, unreachable_pg_url
from app.settings import Settings
from app.store.database import Store
from app.store.migrate import upgrade_async
from app.store.models import CatalogSnapshot
from app.store.records import FeedbackRecord, RouteRecord
from app.store.retention import Retention
from app.store.runtime import StoreRuntime
from app.store.snapshot_codec import catalog_from_json, catalog_to_json
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORE_BACKENDS)
async def store_url(
    request: pytest.FixtureRequest, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async with fresh_store_url(request.param, pg_url, tmp_path_factory.mktemp("store")) as url:
        await upgrade_async(url)
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runtime(store_url: str) -> AsyncIterator[StoreRuntime]:
    """The store's repositories, without the service (no background tasks)."""
    store = Store(store_url)
    yield StoreRuntime(store, Settings(database_url=store_url))
    await store.aclose()


@pytest.fixture(scope="module")
def store_settings(make_settings: SettingsBuilder, store_url: str) -> SettingsBuilder:
    return make_settings.extend(database_url=store_url, refresh_interval_s=0, cleanup_interval_s=0)


def _source_name() -> str:
    return f"wh_{uuid.uuid4().hex[:8]}"


async def _until(client: httpx.AsyncClient, path: str, key: str, done: Any) -> dict[str, Any]:
    """GET ``path`` until ``done(body[key])``; the background work it waits for is short."""
    for _ in range(200):
        body: dict[str, Any] = (await client.get(path)).json()
        if done(body[key]):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path}: {key} never reached the expected value: {body}")


async def test_same_warehouse_same_version_and_a_new_column_a_new_one(
    store_url: str, pg_url: str, runtime: StoreRuntime, store_settings: SettingsBuilder
) -> None:
    name = _source_name()
    async with (
        small_pg_warehouse(pg_url) as schema,
        service_client(store_settings(sources={name: {"url": pg_url, "schemas": [schema]}})) as client,
    ):
        first = (await client.get(f"/sources/{name}")).json()
        assert first["tables"] == 3
        assert first["catalog_stale"] is False
        again = (await client.post(f"/sources/{name}/refresh")).json()
        assert again["catalog_version"] == first["catalog_version"]
        assert await runtime.snapshots.versions(name) == [first["catalog_version"]]

        engine = create_async_engine(pg_url)
        async with engine.begin() as conn:
            await conn.execute(sa.text(f'ALTER TABLE "{schema}".orders ADD COLUMN placed_at timestamptz'))
        await engine.dispose()
        changed = (await client.post(f"/sources/{name}/refresh")).json()
        assert changed["catalog_version"] != first["catalog_version"]
        assert changed["last_error"] is None
        versions = await runtime.snapshots.versions(name)
        assert versions == [changed["catalog_version"], first["catalog_version"]]
        stored = await runtime.snapshots.get(name, changed["catalog_version"])
        assert stored is not None
        orders = stored.by_name()[f"{schema}.orders"]
        assert "placed_at" in [c.name for c in orders.columns]


async def test_restart_serves_the_stored_snapshot_while_the_warehouse_is_unreachable(
    store_url: str, pg_url: str, store_settings: SettingsBuilder
) -> None:
    name = _source_name()
    question = {"question": "total of orders per customer", "source": name, "min_score": 0}
    async with small_pg_warehouse(pg_url) as schema:
        async with service_client(
            store_settings(sources={name: {"url": pg_url, "schemas": [schema]}})
        ) as client:
            before = (await client.post("/route", json=question)).json()
        assert before["catalog_stale"] is False

        down = store_settings(sources={name: {"url": unreachable_pg_url(pg_url), "schemas": [schema]}})
        async with service_client(down) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["sources"] == {name: True}
            routed = await client.post("/route", json=question)
            assert routed.status_code == 200, routed.text
            body = routed.json()
            assert body["catalog_version"] == before["catalog_version"]
            assert body["catalog_stale"] is True
            assert body["catalog_age_s"] > 0
            assert [t["name"] for t in body["tables"]] == [t["name"] for t in before["tables"]]

            source = await _until(client, f"/sources/{name}", "last_error", lambda e: e is not None)
            assert "cannot read catalog" in source["last_error"]
            assert source["catalog_version"] == before["catalog_version"]
            assert source["catalog_stale"] is True
            # A refresh that cannot read the warehouse says so (502), and the old snapshot serves on.
            refreshed = await client.post(f"/sources/{name}/refresh")
            assert refreshed.status_code == 502
            assert refreshed.json()["error_kind"] == "unreachable"
            assert refreshed.json()["source"]["catalog_version"] == before["catalog_version"]
            assert (await client.get(f"/routes/{body['route_id']}")).json()["catalog_version"] == (
                before["catalog_version"]
            )


async def test_unreachable_source_without_a_stored_snapshot_is_not_ready(
    store_url: str, pg_url: str, store_settings: SettingsBuilder
) -> None:
    name = _source_name()
    async with service_client(
        store_settings(sources={name: {"url": unreachable_pg_url(pg_url), "schemas": ["public"]}})
    ) as client:
        assert (await client.get("/readyz")).status_code == 503
        routed = await client.post("/route", json={"question": "orders", "source": name})
        assert routed.status_code == 503
        assert routed.headers["content-type"] == "application/problem+json"


async def test_scheduled_refresh_picks_up_a_change(
    store_url: str, pg_url: str, store_settings: SettingsBuilder
) -> None:
    name = _source_name()
    async with small_pg_warehouse(pg_url) as schema:
        settings = store_settings(
            sources={name: {"url": pg_url, "schemas": [schema]}}, refresh_interval_s=0.1
        )
        async with service_client(settings) as client:
            first = (await client.get(f"/sources/{name}")).json()
            engine = create_async_engine(pg_url)
            async with engine.begin() as conn:
                await conn.execute(sa.text(f'CREATE TABLE "{schema}".refunds (id integer PRIMARY KEY)'))
            await engine.dispose()
            changed = await _until(
                client, f"/sources/{name}", "catalog_version", lambda v: v != first["catalog_version"]
            )
            assert changed["tables"] == 4


def _catalog(source: str, *columns: str) -> Catalog:
    return Catalog(source, (Table("s", "t", columns=tuple(Column(c, "integer") for c in columns)),))


async def test_codec_round_trip_keeps_the_version() -> None:
    catalog = _catalog("x", "a", "b")
    back = catalog_from_json("x", catalog.version, catalog_to_json(catalog))
    assert back == catalog
    # Rebuilt from its parts, it hashes to the same version.
    assert Catalog("x", back.tables).version == catalog.version


async def test_a_corrupt_newest_snapshot_is_skipped(runtime: StoreRuntime) -> None:
    source = _source_name()
    good, bad = _catalog(source, "a"), _catalog(source, "a", "b")
    now = datetime.now(UTC)
    assert await runtime.snapshots.save(good, now - timedelta(hours=1))
    assert await runtime.snapshots.save(bad, now)
    async with runtime.store.begin() as session:
        await session.execute(
            sa.update(CatalogSnapshot)
            .where(CatalogSnapshot.version == bad.version)
            .values(content={"format": 1, "tables": [{"name": "t"}]})
        )
    newest = await runtime.snapshots.newest(source)
    assert newest is not None
    assert newest.catalog == good


async def test_retention_keeps_newest_snapshots_used_ones_and_routes_with_feedback(
    runtime: StoreRuntime,
) -> None:
    source = _source_name()
    now = datetime.now(UTC)
    catalogs = [_catalog(source, *(f"c{j}" for j in range(i + 1))) for i in range(5)]
    for age, catalog in zip(range(5, 0, -1), catalogs, strict=True):
        await runtime.snapshots.save(catalog, now - timedelta(days=age))
    oldest, used = catalogs[0], catalogs[1]

    def route(age_days: float, catalog: Catalog) -> RouteRecord:
        return RouteRecord(
            uuid.uuid4().hex, now - timedelta(days=age_days), source, catalog.version, "lexical",
            None, "q", 10, 0.5, None, [], {},
        )  # fmt: skip

    old, old_with_feedback, recent = route(40, oldest), route(40, oldest), route(1, used)
    await runtime.routes.insert_many([old, old_with_feedback, recent])
    await runtime.feedback.save(FeedbackRecord(old_with_feedback.route_id, now, ["s.t"], None))
    retention = Retention(runtime.routes, runtime.snapshots, route_retention_days=30, snapshot_keep=2)
    result = await retention.cleanup(now)
    assert result.routes_deleted >= 1
    assert await runtime.routes.get(old.route_id) is None
    assert await runtime.routes.get(old_with_feedback.route_id) is not None
    assert await runtime.routes.get(recent.route_id) is not None
    # Newest two, plus the one a kept route used; the oldest stays for the route with feedback.
    kept = set(await runtime.snapshots.versions(source))
    assert kept == {catalogs[4].version, catalogs[3].version, used.version, oldest.version}
