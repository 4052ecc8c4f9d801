"""How a source's catalog is read, chosen from its URL: async driver, sync dialect, or DuckDB file.

- an async SQLAlchemy URL (``postgresql+asyncpg``, ``mysql+asyncmy``, ``sqlite+aiosqlite``):
  ``app.catalog.introspect`` (bulk readers for PostgreSQL and MySQL/MariaDB);
- ``duckdb:///path/file.duckdb``: the file read-only through DuckDB's catalog functions
  (``app.catalog.duckdb_catalog``);
- any other URL of an installed SQLAlchemy dialect (Snowflake, BigQuery, Trino, MSSQL ...): the
  generic Inspector (``get_multi_*``) over the dialect's sync driver, in a worker thread, within
  the introspection timeout.

``generic=True`` (a source's ``introspection: generic``) reads every URL through the Inspector,
DuckDB through its SQLAlchemy dialect (``duckdb-sqlalchemy``) with the file opened read-only for
each read, as the bulk reader does.

A URL that does not parse or names a dialect that is not installed is a ``SourceConfigError``:
one line that names the source and the dialect, never the URL (it may hold a password).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.catalog.duckdb_catalog import (
    NO_EXTENSIONS,
    DuckDBReadError,
    FileState,
    duckdb_path,
    file_state,
    read_duckdb,
)
from app.catalog.introspect import IntrospectionError, introspect, read_with_inspector
from app.catalog.model import Catalog
from app.catalog.read_errors import ReadErrorKind, kind_of
from app.catalog.row_counts import with_row_counts

__all__ = ["CatalogReader", "SourceConfigError", "catalog_reader"]


class SourceConfigError(Exception):
    """A source's URL cannot be used: it does not parse, or its dialect is not installed."""


class CatalogReader(Protocol):
    """Reads one source's catalog; ``dialect`` names its SQL dialect (for DDL and SQL parsing)."""

    dialect: str

    @property
    def default_schema(self) -> str | None: ...

    async def read(
        self, source: str, schemas: Sequence[str] | None, exclude: Sequence[str], timeout_s: float | None
    ) -> Catalog: ...

    async def aclose(self) -> None: ...


class AsyncEngineReader:
    """A warehouse behind an async driver; PostgreSQL and MySQL in bulk unless ``bulk`` is False."""

    def __init__(self, engine: AsyncEngine, bulk: bool = True) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.bulk = bulk

    @property
    def default_schema(self) -> str | None:
        return self.engine.dialect.default_schema_name

    async def read(
        self, source: str, schemas: Sequence[str] | None, exclude: Sequence[str], timeout_s: float | None
    ) -> Catalog:
        return await introspect(
            self.engine, source, schemas, exclude=exclude, timeout_s=timeout_s, bulk=self.bulk
        )

    async def aclose(self) -> None:
        await self.engine.dispose()


class SyncEngineReader:
    """Any installed SQLAlchemy dialect: the Inspector over its sync driver, in a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @property
    def default_schema(self) -> str | None:
        return self.engine.dialect.default_schema_name

    def _read(self, source: str, schemas: Sequence[str] | None, exclude: Sequence[str]) -> Catalog:
        with self.engine.connect() as conn:
            tables = with_row_counts(conn, read_with_inspector(conn, source, schemas, exclude))
        return Catalog(source=source, tables=tuple(sorted(tables, key=lambda t: t.qualified_name)))

    async def read(
        self, source: str, schemas: Sequence[str] | None, exclude: Sequence[str], timeout_s: float | None
    ) -> Catalog:
        # A thread cannot be cancelled: at the timeout the refresh fails and the thread finishes
        # its read in the background; the source's lock keeps a second one from starting.
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.to_thread(self._read, source, schemas, exclude)
        except TimeoutError as exc:
            raise IntrospectionError(
                f"reading the catalog of source {source!r} timed out after {timeout_s:g} s",
                ReadErrorKind.TIMED_OUT,
            ) from exc
        except (OSError, DBAPIError) as exc:
            kind = kind_of(exc)
            cause = type(getattr(exc, "orig", None) or exc).__name__
            raise IntrospectionError(
                f"cannot read catalog of source {source!r}: {kind} ({cause})", kind
            ) from exc

    async def aclose(self) -> None:
        await asyncio.to_thread(self.engine.dispose)


class DuckDBReader:
    """A DuckDB database file, opened read-only for each read that the file's state calls for.

    Opening a file with thousands of tables costs DuckDB more than reading its catalog, and most
    refreshes find the file as it was: an unchanged file (``file_state``) gives the last catalog.
    """

    dialect = "duckdb"

    def __init__(self, path: str) -> None:
        self.path = path
        self._last: tuple[tuple[object, ...], FileState, Catalog] | None = None

    async def _read(
        self, source: str, schemas: Sequence[str] | None, exclude: Sequence[str], timeout_s: float | None
    ) -> Catalog:
        asked = (source, None if schemas is None else tuple(schemas), tuple(exclude))
        # Looked at before the read: a write between the look and the read costs one more read.
        state = await asyncio.to_thread(file_state, self.path)
        if state is not None and self._last is not None and self._last[:2] == (asked, state):
            return self._last[2]
        catalog = await read_duckdb(self.path, source, schemas, exclude, timeout_s)
        self._last = None if state is None else (asked, state, catalog)
        return catalog

    @property
    def default_schema(self) -> str | None:
        return "main"

    async def read(
        self, source: str, schemas: Sequence[str] | None, exclude: Sequence[str], timeout_s: float | None
    ) -> Catalog:
        try:
            return await self._read(source, schemas, exclude, timeout_s)
        except FileNotFoundError as exc:
            raise IntrospectionError(
                f"the DuckDB file of source {source!r} does not exist", ReadErrorKind.DATABASE_MISSING
            ) from exc
        except LookupError as exc:
            raise IntrospectionError(
                f"schema {exc.args[0]!r} does not exist in source {source!r}", ReadErrorKind.SCHEMA_MISSING
            ) from exc
        except TimeoutError as exc:
            raise IntrospectionError(
                f"reading the catalog of source {source!r} timed out after {timeout_s:g} s",
                ReadErrorKind.TIMED_OUT,
            ) from exc
        except DuckDBReadError as exc:
            raise IntrospectionError(f"source {source!r}: {exc}") from exc

    async def aclose(self) -> None:
        return None


def _url(source: str, text: str) -> URL:
    try:
        return make_url(text)
    except (ArgumentError, ValueError) as exc:  # SQLAlchemy's message quotes the whole URL
        raise SourceConfigError(f"source {source!r}: the URL is not an SQLAlchemy URL") from exc


def _sync_engine(url: URL) -> Engine:
    if url.get_backend_name() == "duckdb":
        # Opened read-only for one read and closed, never pooled: a held file locks out its writer.
        return create_engine(
            url, poolclass=NullPool, connect_args={"read_only": True, "config": dict(NO_EXTENSIONS)}
        )
    return create_engine(url, pool_pre_ping=True)


def catalog_reader(source: str, url_text: str, *, generic: bool = False) -> CatalogReader:
    """The reader for ``url_text``; SourceConfigError when it cannot be used (no secret in it).

    ``generic`` reads through SQLAlchemy's Inspector even where a bulk reader exists.
    """
    url = _url(source, url_text)
    if url.get_backend_name() == "duckdb":
        try:
            path = duckdb_path(url.database)
        except ValueError as exc:
            raise SourceConfigError(f"source {source!r}: {exc}") from exc
        if not generic:
            return DuckDBReader(path)
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError as exc:
        raise SourceConfigError(
            f"source {source!r}: SQLAlchemy dialect {url.drivername!r} is not installed"
            " (install its package, e.g. the matching tablerouter extra)"
        ) from exc
    try:
        if getattr(dialect, "is_async", False):
            return AsyncEngineReader(create_async_engine(url, pool_pre_ping=True), bulk=not generic)
        return SyncEngineReader(_sync_engine(url))
    except (ArgumentError, ImportError, TypeError, ValueError) as exc:
        # A missing DBAPI module (the dialect is there, its driver is not), or bad URL arguments.
        raise SourceConfigError(
            f"source {source!r}: cannot use dialect {url.drivername!r} ({type(exc).__name__})"
        ) from exc
