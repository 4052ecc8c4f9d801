"""The service's own store degrades, never denies: outages played on a private PostgreSQL.

The store is a private cluster (``private_pg``) stopped and started under the route-log writer
and under the real service on a real socket; the shared servers are never stopped. Outages here
last a few seconds: the 60 s one under load is bench/store_outage.py's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.auth.key_repository import ApiKeyRepository
from app.harness.service import running_service
from app.store.database import Store
from app.store.health import StoreHealth
from app.store.migrate import upgrade_async
from app.store.records import RouteRecord
from app.store.route_log import RouteLogRepository
from app.store.route_log_spill import RouteLogSpill
from app.store.route_log_writer import RouteLogWriter, WriterTiming
from app.store.row_text import NUL_STANDIN
from tests.fixtures.auth import ADMIN_KEY
from tests.fixtures.private_pg import PrivatePostgres
from tests.fixtures.route_log import logged_route
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
QUICK = WriterTiming(backoff_first_s=0.05, backoff_max_s=0.2, drain_timeout_s=5)
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
QUESTION = {"question": "total order amount per customer"}


async def _until(check: Callable[[], Awaitable[bool]], what: str, tries: int = 600) -> None:
    """Poll ``check`` until it holds (an outage's end is seen within seconds)."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def _private_database(server: PrivatePostgres, *, migrated: bool) -> str:
    """A new database on the (running) private server; its URL."""
    name = f"store_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(server.url(), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    url = server.url(name)
    if migrated:
        await upgrade_async(url)
    return url


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def store_url(private_pg: PrivatePostgres) -> AsyncIterator[str]:
    """One migrated store on the private server, left stopped: each test starts and stops it.

    Migrating costs seconds on a busy machine: the tests share it, each with routes of its own.
    """
    await private_pg.start()
    try:
        url = await _private_database(private_pg, migrated=True)
    finally:
        await private_pg.stop()
    yield url


async def _logged(url: str) -> set[str]:
    """The route ids in the store at ``url``."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set((await conn.execute(sa.text("SELECT route_id FROM route_log"))).scalars())
    finally:
        await engine.dispose()


@asynccontextmanager
async def _writer(url: str, spill_dir: Path, queue_size: int) -> AsyncIterator[RouteLogWriter]:
    """A started route-log writer over the store at ``url``, spilling into ``spill_dir``."""
    store = Store(url)
    health = StoreHealth(store, probe_interval_s=0.1)
    health.migrated.set()
    spill = RouteLogSpill(spill_dir, 1 << 20)
    writer = RouteLogWriter(RouteLogRepository(store), health, queue_size, 50, spill=spill, timing=QUICK)
    writer.start()
    try:
        yield writer
    finally:
        await writer.aclose()
        await health.aclose()
        await store.aclose()


def _routes(count: int, key_id: str = "k1") -> list[RouteRecord]:
    return [logged_route(key_id, datetime.now(UTC)) for _ in range(count)]


def _spill_files(folder: Path) -> list[Path]:
    return list(folder.glob("*.jsonl"))


async def _retrying(writer: RouteLogWriter) -> bool:
    return writer.stats().retries > 0


async def test_one_bad_row_takes_no_other_row_with_it(private_pg: PrivatePostgres, store_url: str) -> None:
    """A NUL is replaced, a row the store refuses is the only one lost, another key's rows stay."""
    url = store_url
    await private_pg.start()
    try:
        mine, theirs = _routes(1, "key_a"), _routes(2, "key_b")
        nul = logged_route("key_a", datetime.now(UTC), {"note": "a\x00b"})
        nul = RouteRecord(**{**nul.row(), "question": "why\x00not"})
        refused = RouteRecord(**{**mine[0].row(), "route_id": "r" * 80})  # longer than the column
        batch = [theirs[0], nul, refused, mine[0], theirs[1]]
        async with _writer(url, Path("/nonexistent-never-spilled"), 100) as writer:
            for record in batch:  # no await in between: one batch
                writer.record(record)
            for record in batch:
                await writer.wait_written(record.route_id)
            stats = writer.stats()
        assert (stats.written, stats.failed, stats.dropped) == (4, 1, 0)
        logged = await _logged(url)
        assert {r.route_id for r in batch} & logged == {r.route_id for r in batch} - {refused.route_id}
        store = Store(url)
        try:
            back = await RouteLogRepository(store).get(nul.route_id)
        finally:
            await store.aclose()
        assert back is not None
        assert (back.question, back.stats["note"]) == (f"why{NUL_STANDIN}not", f"a{NUL_STANDIN}b")
    finally:
        await private_pg.stop()


async def test_an_outage_loses_no_route(private_pg: PrivatePostgres, store_url: str, tmp_path: Path) -> None:
    """Retried with backoff while down; past the queue, spilled; all written once the store is back."""
    url = store_url
    await private_pg.start()
    try:
        async with _writer(url, tmp_path, queue_size=5) as writer:
            await private_pg.stop()
            routes = _routes(20)
            for record in routes:
                writer.record(record)
            assert (writer.stats().spilled, writer.stats().dropped) == (15, 0)
            await _until(lambda: _retrying(writer), "the writer retries while the store is down")
            await private_pg.start()

            async def all_logged() -> bool:
                return {r.route_id for r in routes} <= await _logged(url)

            await _until(all_logged, "every route is in the store")
            assert writer.stats().replayed == 15
        assert _spill_files(tmp_path) == []
    finally:
        await private_pg.stop()


async def test_routes_unwritten_at_shutdown_are_replayed_by_the_next_start(
    private_pg: PrivatePostgres, store_url: str, tmp_path: Path
) -> None:
    url = store_url
    try:
        routes = _routes(8)
        async with _writer(url, tmp_path, queue_size=5) as writer:
            await asyncio.sleep(0.1)  # let it wait on its queue: the 5 queued become its batch
            for record in routes:
                writer.record(record)
            await _until(lambda: _retrying(writer), "the writer sees the store down")
        assert writer.stats().spilled == 8  # 3 past the queue, then its unwritten batch at shutdown
        assert _spill_files(tmp_path) != []
        await private_pg.start()
        async with _writer(url, tmp_path, queue_size=5) as later:

            async def replayed() -> bool:
                return later.stats().replayed == 8

            await _until(replayed, "the next writer replays the file")
        assert {r.route_id for r in routes} <= await _logged(url)
        assert _spill_files(tmp_path) == []
    finally:
        await private_pg.stop()


def _service_settings(make_settings: SettingsBuilder, url: str, tmp: Path, **more: Any) -> Any:
    return make_settings(
        tmp=tmp,
        auth=True,
        admin_key=ADMIN_KEY,
        database_url=url,
        key_cache_s=0,  # every request asks the store: the outage is all that keeps keys working
        refresh_interval_s=0,
        route_log_spill_dir=str(tmp / "spill"),
        route_log_retry_max_s=0.2,
        **more,
    )


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    """A sample of GET /metrics (0 when absent)."""
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


async def _store_state(client: httpx.AsyncClient) -> str:
    body: dict[str, Any] = (await client.get("/readyz")).json()
    return str(body["store"])


async def test_keys_verified_before_an_outage_keep_working(
    private_pg: PrivatePostgres, store_url: str, make_settings: SettingsBuilder, tmp_path: Path
) -> None:
    """Through the outage: verified keys 200, unverified 503; after it, revocations apply."""
    url = store_url
    await private_pg.start()
    try:
        async with (
            running_service(_service_settings(make_settings, url, tmp_path)) as (base, _),
            httpx.AsyncClient(base_url=base, timeout=30) as client,
        ):
            secrets, ids = {}, {}
            for name in ("alice", "bob"):
                made = await client.post(
                    "/keys", json={"name": name, "grants": {"demo": ["*"]}}, headers=ADMIN
                )
                secrets[name], ids[name] = made.json()["secret"], made.json()["key"]["id"]

            def as_key(name: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {secrets[name]}"}

            answered = []
            for name in ("alice", "bob"):
                first = await client.post("/route", json=QUESTION, headers=as_key(name))
                assert first.status_code == 200, first.text
                answered.append(first.json()["route_id"])
            # Revoked by another process (the CLI): this one learns it from the store only.
            store = Store(url)
            try:
                assert await ApiKeyRepository(store).revoke(ids["bob"]) is not None
            finally:
                await store.aclose()

            stale_before = await _metric(client, "tablerouter_stale_keys_total")
            await private_pg.stop()
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()["store"]) == (200, "degraded")
            assert await _metric(client, "tablerouter_store_up") == 0
            sources = await client.get("/sources", headers=as_key("alice"))
            assert (sources.status_code, sources.json()["store"]) == (200, "degraded")
            for name in ("alice", "alice", "bob", "alice"):
                during = await client.post("/route", json=QUESTION, headers=as_key(name))
                assert during.status_code == 200, during.text
                answered.append(during.json()["route_id"])
            stranger = await client.post(
                "/route", json=QUESTION, headers={"Authorization": "Bearer trk_" + "x" * 40}
            )
            assert stranger.status_code == 503
            assert stranger.headers["content-type"] == "application/problem+json"
            assert "retry-after" in stranger.headers
            refused = await client.post("/keys", json={"name": "carol", "admin": True}, headers=ADMIN)
            assert refused.status_code == 503
            # /sources and four routes let in on keys verified before (metrics are process-wide: a delta)
            assert await _metric(client, "tablerouter_stale_keys_total") - stale_before == 5

            await private_pg.start()

            async def store_ok() -> bool:
                return await _store_state(client) == "ok"

            await _until(store_ok, "/readyz says the store is ok again")
            assert await _metric(client, "tablerouter_store_up") == 1
            assert (await client.post("/route", json=QUESTION, headers=as_key("bob"))).status_code == 401
            after = await client.post("/route", json=QUESTION, headers=as_key("alice"))
            assert after.status_code == 200
            answered.append(after.json()["route_id"])

            async def all_logged() -> bool:
                return set(answered) <= await _logged(url)

            await _until(all_logged, "every answered route is in the route log")
    finally:
        await private_pg.stop()


async def test_the_service_starts_with_its_store_down(
    private_pg: PrivatePostgres, make_settings: SettingsBuilder, tmp_path: Path
) -> None:
    """Ready with the admin key while the store is down; migrated, and the routes logged, once it is up."""
    await private_pg.start()
    url = await _private_database(private_pg, migrated=False)
    await private_pg.stop()
    try:
        async with (
            running_service(_service_settings(make_settings, url, tmp_path)) as (base, _),
            httpx.AsyncClient(base_url=base, timeout=30) as client,
        ):
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()["store"]) == (200, "degraded")
            routed = await client.post("/route", json=QUESTION, headers=ADMIN)
            assert routed.status_code == 200, routed.text
            stored_key = await client.post(
                "/route", json=QUESTION, headers={"Authorization": "Bearer trk_" + "y" * 40}
            )
            assert stored_key.status_code == 503
            await private_pg.start()

            async def store_ok() -> bool:
                return await _store_state(client) == "ok"

            await _until(store_ok, "the store is migrated and ok")
            route_id = routed.json()["route_id"]

            async def logged() -> bool:
                return (await client.get(f"/routes/{route_id}", headers=ADMIN)).status_code == 200

            await _until(logged, "the route answered during the outage is in the route log")
    finally:
        await private_pg.stop()


async def test_not_ready_when_no_key_can_be_checked(
    store_url: str, make_settings: SettingsBuilder, tmp_path: Path
) -> None:
    """Keys required, no static admin key, nothing verified yet and the store down: nothing to serve."""
    settings = _service_settings(make_settings, store_url, tmp_path).model_copy(update={"admin_key": None})
    async with (
        running_service(settings) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (
            503,
            {"status": "not ready", "sources": {}, "store": "degraded"},
        )
