"""Sources on real servers: which schemas are read by default, and readiness per source.

A source that cannot be read does not make the service unready or the other sources fail: it
answers 503 with Retry-After and the kind of its error, is retried in the background, and
serves once its warehouse is up. Outages and passwords are played on a private PostgreSQL
(``private_pg``); the shared servers are never stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from asyncio.subprocess import PIPE
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.harness.service import service_client
from app.harness.stores import fresh_pg_database, small_pg_warehouse
from tests.fixtures.private_pg import PASSWORD, PrivatePostgres
from tests.fixtures.settings import SettingsBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
PROBLEM_JSON = "application/problem+json"


async def _execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _until(client: httpx.AsyncClient, path: str, key: str, value: Any) -> dict[str, Any]:
    """GET ``path`` until its ``key`` is ``value``; background retries come within seconds."""
    for _ in range(600):
        body: dict[str, Any] = (await client.get(path)).json()
        if body.get(key) == value:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path}: {key} never became {value!r}: {body}")


async def _table_names(client: httpx.AsyncClient, source: str) -> set[str]:
    page = (await client.get(f"/sources/{source}/tables", params={"limit": 1000})).json()
    return {t["name"] for t in page["tables"]}


async def test_every_user_schema_is_read_unless_excluded(pg_url: str, make_settings: SettingsBuilder) -> None:
    async with fresh_pg_database(pg_url) as url:
        await _execute(
            url,
            "CREATE SCHEMA sales",
            "CREATE SCHEMA hr",
            "CREATE TABLE sales.orders (id integer PRIMARY KEY, total numeric)",
            "CREATE TABLE hr.employees (id integer PRIMARY KEY, name text)",
            "CREATE TABLE public.regions (id integer PRIMARY KEY, name text)",
        )
        async with service_client(
            make_settings(sources={"wh": {"url": url}}, refresh_interval_s=0)
        ) as client:
            assert await _table_names(client, "wh") == {"sales.orders", "hr.employees", "public.regions"}
            source = (await client.get("/sources/wh")).json()
            assert (source["status"], source["tables"], source["schemas"]) == ("ready", 3, None)
        narrowed = make_settings(
            sources={"wh": {"url": url, "exclude_schemas": ["hr"]}}, refresh_interval_s=0
        )
        async with service_client(narrowed) as client:
            assert await _table_names(client, "wh") == {"sales.orders", "public.regions"}
            assert (await client.get("/sources/wh")).json()["exclude_schemas"] == ["hr"]


async def test_a_source_that_is_down_does_not_hold_back_the_others(
    pg_url: str, private_pg: PrivatePostgres, make_settings: SettingsBuilder
) -> None:
    async with small_pg_warehouse(pg_url) as schema:
        settings = make_settings(
            sources={"good": {"url": pg_url, "schemas": [schema]}, "late": {"url": private_pg.url()}},
            refresh_interval_s=1,  # also the cap of the retries' backoff
        )
        async with service_client(settings) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["sources"] == {"good": True, "late": False}
            good = await client.post("/route", json={"question": "orders per customer", "source": "good"})
            assert good.status_code == 200, good.text

            late = await client.post("/route", json={"question": "anything", "source": "late"})
            assert late.status_code == 503
            assert late.headers["content-type"] == PROBLEM_JSON
            assert int(late.headers["Retry-After"]) >= 1
            assert late.json()["error_kind"] == "unreachable"
            state = (await client.get("/sources/late")).json()
            assert (state["status"], state["error_kind"]) == ("failed", "unreachable")
            assert state["retry_in_s"] is not None
            refreshed = await client.post("/sources/late/refresh")
            assert refreshed.status_code == 502
            assert refreshed.headers["content-type"] == PROBLEM_JSON
            assert refreshed.json()["error_kind"] == "unreachable"
            for text in (late.text, refreshed.text, (await client.get("/sources")).text):
                assert PASSWORD not in text

            await private_pg.start()
            try:
                await _execute(
                    private_pg.url(), "CREATE TABLE IF NOT EXISTS shipments (id integer PRIMARY KEY)"
                )
                state = await _until(client, "/sources/late", "status", "ready")
                assert (state["tables"], state["last_error"], state["error_kind"]) == (1, None, None)
                routed = await client.post("/route", json={"question": "shipments", "source": "late"})
                assert routed.status_code == 200, routed.text
            finally:
                await private_pg.stop()


async def test_read_errors_name_their_kind_without_secrets(
    private_pg: PrivatePostgres, mysql_url: str, make_settings: SettingsBuilder
) -> None:
    wrong = "wrong-Pw-3b9f"
    missing = f"no_db_{uuid.uuid4().hex[:8]}"
    maria = sa.make_url(mysql_url)
    sources = {
        "pg_password": {"url": private_pg.url(password=wrong)},
        "pg_database": {"url": private_pg.url(database=missing)},
        "maria_password": {"url": maria.set(password=wrong).render_as_string(hide_password=False)},
        "maria_database": {"url": maria.set(database=missing).render_as_string(hide_password=False)},
    }
    await private_pg.start()
    try:
        async with service_client(make_settings(sources=sources, refresh_interval_s=0)) as client:
            assert (await client.get("/readyz")).status_code == 503  # no source can serve
            listed = (await client.get("/sources")).json()["sources"]
            kinds = {s["name"]: (s["status"], s["error_kind"]) for s in listed}
            assert kinds == {
                "pg_password": ("failed", "authentication failed"),
                "pg_database": ("failed", "database missing"),
                "maria_password": ("failed", "authentication failed"),
                "maria_database": ("failed", "database missing"),
            }
            assert all("authentication failed" in s["last_error"] for s in listed if "password" in s["name"])
            for text in ((await client.get("/sources")).text, str(listed)):
                assert wrong not in text
                assert PASSWORD not in text
    finally:
        await private_pg.stop()


async def test_a_source_without_tables_starts_and_says_so(
    pg_url: str, make_settings: SettingsBuilder
) -> None:
    schema = f"tr_empty_{uuid.uuid4().hex[:8]}"
    await _execute(pg_url, f'CREATE SCHEMA "{schema}"')
    try:
        settings = make_settings(sources={"bare": {"url": pg_url, "schemas": [schema]}}, refresh_interval_s=0)
        async with service_client(settings) as client:
            source = (await client.get("/sources/bare")).json()
            assert (source["status"], source["tables"], source["last_error"]) == ("empty", 0, None)
            assert "no table" in source["note"]
            assert (await client.get("/sources/bare/tables")).json()["total"] == 0
            routed = await client.post("/route", json={"question": "orders", "source": "bare"})
            assert routed.status_code == 409
            assert routed.headers["content-type"] == PROBLEM_JSON
            assert routed.json()["type"].endswith("/source-empty")
    finally:
        await _execute(pg_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


SECRET = "pw-Never-Shown-51d"
TYPO_URL = f"postgresql+asyncpg://u:{SECRET}@127.0.0.1:1/db"


@pytest.mark.parametrize(
    ("sources", "said"),
    [
        (
            json.dumps({"sales": {"url": TYPO_URL, "schema": ["x"]}}),
            "source 'sales' has an unknown key 'schema'",
        ),
        ('{"sales": {"url": "%s",}' % TYPO_URL, 'error parsing value for field "sources"'),  # noqa: UP031
    ],
    ids=["unknown-key", "not-json"],
)
async def test_bad_source_settings_refuse_start_up_in_one_line(sources: str, said: str) -> None:
    env = {**os.environ, "TABLEROUTER_SOURCES": sources}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "serve", "--port", "1", env=env, stdout=PIPE, stderr=PIPE
    )
    out, err = (part.decode() for part in await proc.communicate())
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert said in lines[0]
    assert "Traceback" not in err
    assert SECRET not in err + out
