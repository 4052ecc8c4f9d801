"""Alembic owns the store's schema: upgrade on an empty database, no drift from the models, downgrade."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import main
from app.harness.stores import STORE_BACKENDS, fresh_store_url
from app.settings import get_settings
from app.store import migrate
from app.store.migration_lock import sqlite_migration_lock
from app.store.models import Base

pytestmark = pytest.mark.asyncio(loop_scope="module")
STORE_TABLES = {"catalog_snapshot", "route_log", "route_feedback", "api_key", "route_memory", "mined_join"}
REPO_ROOT = Path(__file__).resolve().parents[1]


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


# Imports, says so, then upgrades on the go line: all processes start upgrading together, like
# replicas started at once, as soon as the slowest has imported (not after a fixed wait).
UPGRADE_ON_GO = (
    "import sys; from app.store.migrate import upgrade; "
    "print('imported', flush=True); sys.stdin.readline(); upgrade(sys.argv[1])"
)


async def _upgrades_in_processes(url: str, n: int) -> list[int]:
    """``n`` processes that each import first, then upgrade ``url`` at the same moment."""
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", UPGRADE_ON_GO, url, stdin=PIPE, stdout=PIPE
        )
        for _ in range(n)
    ]
    for process in processes:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 120) == b"imported\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
    await asyncio.gather(*(p.stdin.drain() for p in processes if p.stdin is not None))
    return list(await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), 120))


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORE_BACKENDS)
async def empty_store(
    request: pytest.FixtureRequest, pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """One empty database per backend for this module; the tests below run in order on it."""
    async with fresh_store_url(request.param, pg_url, tmp_path_factory.mktemp("store")) as url:
        yield url


async def test_upgrade_check_downgrade_upgrade(empty_store: str) -> None:
    url = empty_store
    assert not await _tables(url) - {"alembic_version"}
    await asyncio.to_thread(migrate.upgrade, url)
    assert await _tables(url) == STORE_TABLES | {"alembic_version"}
    assert {t.name for t in Base.metadata.sorted_tables} == STORE_TABLES
    # The models and the migrations describe the same schema (raises on any difference).
    await asyncio.to_thread(migrate.check, url)
    await asyncio.to_thread(migrate.downgrade, url)
    assert await _tables(url) - {"alembic_version"} == set()
    # Replicas (processes) starting together take turns: an advisory lock on PostgreSQL, a lock
    # file beside an SQLite store. Without them the later ones fail with "table already exists".
    replicas = 4
    assert await _upgrades_in_processes(url, replicas) == [0] * replicas
    await asyncio.to_thread(migrate.check, url)


async def test_an_sqlite_upgrade_waits_for_another_process_s_migration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The concurrent upgrades above rarely race on SQLite even without the lock file (its DDL is
    # quick): here the lock is held for certain, and the upgrade must wait, then find work to do.
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    with caplog.at_level(logging.INFO, logger="app.store.migration_lock"):
        with sqlite_migration_lock(url):  # "another process" migrating
            upgrading = asyncio.create_task(asyncio.to_thread(migrate.upgrade, url))
            while not any("waiting for it" in r.getMessage() for r in caplog.records):
                assert not upgrading.done(), "the upgrade ran while another process held the lock"
                await asyncio.sleep(0.05)
            assert not await _tables(url) - {"alembic_version"}  # it waits before touching the store
        await asyncio.wait_for(upgrading, 60)
    assert await _tables(url) == STORE_TABLES | {"alembic_version"}


async def test_check_reports_drift(empty_store: str) -> None:
    engine = create_async_engine(empty_store)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE route_log ADD COLUMN stray integer"))
        with pytest.raises(CommandError, match="stray"):
            await asyncio.to_thread(migrate.check, empty_store)
        async with engine.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE route_log DROP COLUMN stray"))
    finally:
        await engine.dispose()
    await asyncio.to_thread(migrate.check, empty_store)


async def test_migrations_give_up_on_a_held_lock_instead_of_queuing(empty_store: str) -> None:
    if not empty_store.startswith("postgresql"):
        pytest.skip("lock_timeout is PostgreSQL's")
    engine = create_async_engine(empty_store)
    try:
        async with engine.connect() as reader, reader.begin():
            # An open transaction that read route_log holds a lock DROP TABLE must wait for.
            await reader.execute(sa.text("SELECT count(*) FROM route_log"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await asyncio.to_thread(migrate.downgrade, empty_store)
    finally:
        await engine.dispose()
    assert await _tables(empty_store) >= STORE_TABLES


async def test_tablerouter_migrate_finds_its_migrations_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TABLEROUTER_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert await asyncio.to_thread(main, ["migrate"]) == 0
    finally:
        get_settings.cache_clear()
    await asyncio.to_thread(migrate.check, url)
    assert not (tmp_path / "tablerouter.db").exists()


def _alembic_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """``alembic ...`` as an operator runs it: from the checkout, the store URL in the environment."""
    env = {**os.environ, "TABLEROUTER_DATABASE_URL": database_url}
    return subprocess.run(
        [str(Path(sys.executable).with_name("alembic")), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_alembic_command_line_upgrades_the_store_in_the_environment(
    backend: str, pg_url: str, tmp_path: Path
) -> None:
    async with fresh_store_url(backend, pg_url, tmp_path) as url:
        upgraded = await asyncio.to_thread(_alembic_cli, "upgrade", "head", database_url=url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert await _tables(url) == STORE_TABLES | {"alembic_version"}
        current = await asyncio.to_thread(_alembic_cli, "current", database_url=url)
        assert current.returncode == 0, current.stderr
        head = ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()
        assert head is not None
        assert f"{head} (head)" in current.stdout
        # ``-x url=...`` wins over the environment (here: a URL that cannot be opened).
        elsewhere = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
        other = await asyncio.to_thread(
            _alembic_cli, "-x", f"url={elsewhere}", "upgrade", "head", database_url="nonsense://"
        )
        assert other.returncode == 0, other.stderr
        assert await _tables(elsewhere) == STORE_TABLES | {"alembic_version"}


# A route_log row as revision 0004 wrote it (before routes kept their coverage and outcome).
ROUTE_0004 = (
    "INSERT INTO route_log (route_id, created_at, source, catalog_version, judge, question, top_k,"
    " min_score, tables, stats) VALUES (:route_id, '2026-12-01 10:00:00', 'demo', 'v1', 'lexical', 'q',"
    " 5, 0.5, '[]', '{}')"
)
OUTCOME_COLUMNS = {"coverage", "partial", "outcome"}


async def _route_log_columns(url: str) -> dict[str, str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(lambda c: sa.inspect(c).get_columns("route_log"))
    finally:
        await engine.dispose()
    return {c["name"]: str(c["type"]) for c in columns}


async def _filenode(url: str) -> int | None:
    """The file PostgreSQL keeps route_log in: a new one means the table was rewritten."""
    if not url.startswith("postgresql"):
        return None
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text("SELECT pg_relation_filenode('route_log')")))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_0005_adds_the_route_outcome_and_keeps_older_routes(
    backend: str, pg_url: str, tmp_path: Path
) -> None:
    async with fresh_store_url(backend, pg_url, tmp_path) as url:
        await asyncio.to_thread(migrate.upgrade, url, "0004")
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text(ROUTE_0004), {"route_id": "before"})
            filenode = await _filenode(url)
            await asyncio.to_thread(migrate.upgrade, url, "0005")
            columns = await _route_log_columns(url)
            assert set(columns) >= OUTCOME_COLUMNS
            if backend == "postgresql":
                assert (columns["coverage"], columns["partial"], columns["outcome"]) == (
                    "DOUBLE PRECISION",
                    "BOOLEAN",
                    "JSONB",
                )
                # Nullable columns without defaults: added to the catalog, not written into every row.
                assert await _filenode(url) == filenode
            async with engine.begin() as conn:
                old = (await conn.execute(sa.text("SELECT coverage, partial, outcome FROM route_log"))).one()
                assert tuple(old) == (None, None, None)  # not known for a route logged before
                await conn.execute(sa.text(ROUTE_0004), {"route_id": "after"})
                await conn.execute(
                    sa.text(
                        "UPDATE route_log SET coverage = 0.75, partial = :partial, outcome = :outcome"
                        " WHERE route_id = 'after'"
                    ),
                    {"partial": True, "outcome": '{"unsettled": ["orders"]}'},
                )
                low = await conn.scalars(
                    sa.text("SELECT route_id FROM route_log WHERE coverage < 0.9 AND partial")
                )
                assert list(low) == ["after"]
            await asyncio.to_thread(migrate.downgrade, url, "0004")
            assert not set(await _route_log_columns(url)) & OUTCOME_COLUMNS
            async with engine.connect() as conn:
                kept = await conn.scalars(sa.text("SELECT route_id FROM route_log ORDER BY route_id"))
                assert list(kept) == ["after", "before"]
        finally:
            await engine.dispose()
