"""Alembic environment of the service's store: async engines (asyncpg, aiosqlite).

The URL comes from the config (``alembic_config`` in app/store/migrate.py, or ``-x url=...``
on the command line), else from the service settings (``TABLEROUTER_DATABASE_URL``).
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection

from app.settings import Settings
from app.store.database import create_store_engine
from app.store.migration_lock import sqlite_migration_lock
from app.store.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        # A SecretStr: the URL's password stays masked everywhere else in the service.
        or Settings().database_url.get_secret_value()
    )


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    dialect = connection.dialect.name if connection is not None else (url or "").split(":")[0]
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: Alembic rebuilds the table instead.
        render_as_batch=dialect.startswith("sqlite"),
        literal_binds=connection is None,
    )


# Replicas starting at once migrate one after the other: the first upgrades, the rest find head
# (PostgreSQL: this advisory lock; SQLite: a lock file, see app/store/migration_lock.py).
MIGRATION_LOCK_KEY = 0x7461626C65  # "table"


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_store_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()
elif isinstance(given := config.attributes.get("connection"), Connection):
    _run_sync(given)
else:
    with sqlite_migration_lock(_url()):
        asyncio.run(_run_async(_url()))
